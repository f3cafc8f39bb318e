package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

// scale binds a new backend's socket itself; when another process holds
// the port, the error names the port and the holder.
func TestBindBackendNamesHolder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	spec := Spec{Name: "backend-3", Port: port, Listen: []string{ln.Addr().String()}}
	files, err := bindBackend(context.Background(), spec)
	if err == nil {
		closeFiles(files)
		t.Fatal("bound a port another socket holds")
	}
	want := fmt.Sprintf("scale: backend-3: port %d is already in use by pid %d", port, os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

// A bound backend socket keeps the port from everyone until it is closed.
func TestBindBackendHoldsPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	files, err := bindBackend(context.Background(), Spec{Name: "backend-3", Listen: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		closeFiles(files)
		t.Fatalf("%s could be bound while the backend's socket is held", addr)
	}
	closeChildFiles([]*child{{files: files}})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s still held after the close: %v", addr, err)
	}
	l.Close()
}
