//go:build !unix

package loadgen

import "time"

// cpuTime is unknown off unix: the report shows 0.
func cpuTime() time.Duration { return 0 }
