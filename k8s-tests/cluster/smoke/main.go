// Command smoke is the cluster's smoke-test workload: a static HTTP server that answers with the
// pod's name, a client mode that fetches a URL, and a file writer and reader, so one tiny image
// checks pod networking, Service routing and cluster DNS from inside the cluster, a port-forward
// from outside, and a volume shared by pods on different nodes.
//
//	smoke serve ADDR        answer GET / with "smoke <hostname>"
//	smoke get URL           print the body of URL; exit 1 on any error or non-200 status
//	smoke write FILE TEXT   write TEXT and a newline to FILE, synced to its file system
//	smoke read FILE         print FILE
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func serve(addr string) error {
	hostname, err := os.Hostname()
	if err != nil {
		return err
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "smoke %s\n", hostname)
	})
	server := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	return server.ListenAndServe()
}

func get(url string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	response, err := client.Get(url)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		return err
	}
	if response.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, response.Status)
	}
	_, err = os.Stdout.Write(body)
	return err
}

func write(path, text string) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err = file.WriteString(text + "\n"); err == nil {
		err = file.Sync()
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	return err
}

func read(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(data)
	return err
}

func main() {
	args := len(os.Args) - 2
	if args < 1 || args > 2 || (args == 2) != (os.Args[1] == "write") {
		fmt.Fprintln(os.Stderr, "usage: smoke serve ADDR | smoke get URL | smoke write FILE TEXT | smoke read FILE")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2])
	case "get":
		err = get(os.Args[2])
	case "write":
		err = write(os.Args[2], os.Args[3])
	case "read":
		err = read(os.Args[2])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
}
