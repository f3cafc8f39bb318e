//go:build !linux

package proxy

// processCPU has no precise clock here: treeCPU reads the coarser process
// times instead.
func processCPU(int32) (float64, bool) { return 0, false }
