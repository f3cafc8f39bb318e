package cluster

import "strconv"

// backendArgs is a local backend's command line (without the program).
func backendArgs(port int, host, name, storeID string) []string {
	args := []string{"backend", "--port", strconv.Itoa(port), "--host", host, "--name", name}
	if storeID != "" {
		args = append(args, "--store-id", storeID)
	}
	return args
}
