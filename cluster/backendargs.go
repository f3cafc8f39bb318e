package cluster

import "strconv"

// backendArgs is a local backend's command line (without the program): it
// serves on the socket the supervisor holds for it, believes forwarded
// headers only with the cluster's proxy secret, and stays out of rotation
// on a store other than the cluster's.
func backendArgs(port int, host, name, secretFile, storeID string) []string {
	args := []string{"backend", "--port", strconv.Itoa(port), "--host", host, "--name", name,
		"--listen-fd", strconv.Itoa(BackendListenFD), "--proxy-secret-file", secretFile}
	if storeID != "" {
		args = append(args, "--store-id", storeID)
	}
	return args
}
