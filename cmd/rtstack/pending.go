package main

import (
	"context"
	"errors"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// TEMPORARY while components land; replaced by their wiring.
func pending(name string) *ffcli.Command {
	return command(name, name, "(not wired yet)", nil, nil, func(context.Context, []string) error {
		return errors.New(name + ": not wired yet")
	})
}

func devCommand() *ffcli.Command     { return pending("dev") }
func gatewayCommand() *ffcli.Command { return pending("gateway") }
func projectCommand() *ffcli.Command { return pending("project") }
func reactCommand() *ffcli.Command   { return pending("react") }
func workCommand() *ffcli.Command    { return pending("work") }
func rebuildCommand() *ffcli.Command { return pending("rebuild") }
func digestCommand() *ffcli.Command  { return pending("digest") }
func dlqCommand() *ffcli.Command     { return pending("dlq") }
