package main

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"
)

// shutdownTimeout bounds the whole ordered shutdown.
const shutdownTimeout = 15 * time.Second

// runUntilDone runs the components until ctx ends (a signal) or one of them
// fails, then shuts down in order: drain (the shutdown hooks, in the order
// given: stop accepting, tell clients), then cancel the consumers and wait
// for them (they commit what they applied), then the caller's deferred
// closes flush producers and close pools.
func runUntilDone(ctx context.Context, p *parts, run func(context.Context) error, drains ...func(context.Context) error) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	eg, egCtx := errgroup.WithContext(runCtx)
	eg.Go(func() error { return run(egCtx) })

	select {
	case <-ctx.Done():
		p.log.Info("shutting down")
	case <-egCtx.Done():
		p.log.Error("a component stopped; shutting down the rest")
	}
	sdCtx, sdCancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer sdCancel()
	var errs []error
	for _, drain := range drains {
		if err := drain(sdCtx); err != nil {
			errs = append(errs, err)
		}
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- eg.Wait() }()
	select {
	case err := <-done:
		errs = append(errs, ignoreCanceled(err))
	case <-sdCtx.Done():
		errs = append(errs, errors.New("components did not stop within the shutdown timeout"))
	}
	return errors.Join(errs...)
}

// all runs fns together; the first error cancels the rest.
func all(fns ...func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		eg, ctx := errgroup.WithContext(ctx)
		for _, fn := range fns {
			eg.Go(func() error { return ignoreCanceled(fn(ctx)) })
		}
		return eg.Wait()
	}
}
