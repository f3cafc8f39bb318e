//go:build linux

package proxy

import "golang.org/x/sys/unix"

// processCPU is the CPU time pid has used, all its threads together, from
// the kernel's clock for that process, to the nanosecond: /proc/<pid>/stat
// counts in 10 ms ticks, a few percent of a one-second slice, as much as
// the differences the benchmark is after.
func processCPU(pid int32) (float64, bool) {
	// MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) in the kernel's terms.
	clock := int32(^pid)<<3 | 2
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, false
	}
	return float64(ts.Nano()) / 1e9, true
}
