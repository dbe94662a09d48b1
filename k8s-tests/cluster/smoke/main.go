// Command smoke is the cluster's smoke-test workload: a static HTTP server that answers with the
// pod's name, and a client mode that fetches a URL, so one tiny image checks pod networking,
// Service routing and cluster DNS from inside the cluster and a port-forward from outside.
//
//	smoke serve ADDR   answer GET / with "smoke <hostname>"
//	smoke get URL      print the body of URL; exit 1 on any error or non-200 status
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

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: smoke serve ADDR | smoke get URL")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2])
	case "get":
		err = get(os.Args[2])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
}
