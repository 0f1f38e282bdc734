// Command echoserver is the stand-in daemon for testnet's own tests, so
// they do not depend on cmd/chancery building while it is being edited.
//
// It serves /healthz (200 "ok"), /pid (its pid) and /child (the pid of
// the grandchild started by -spawn) on -addr, and exits 0 on SIGTERM.
// With -sleep it only sleeps: that is the grandchild.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	spawn := flag.Bool("spawn", false, "start a grandchild that sleeps")
	sleep := flag.Bool("sleep", false, "sleep until killed")
	flag.Parse()
	if *sleep {
		// A bare select{} would be reported as a deadlock by the runtime.
		for {
			time.Sleep(time.Hour)
		}
	}

	child := 0
	if *spawn {
		cmd := exec.Command(os.Args[0], "-sleep")
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		child = cmd.Process.Pid
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/pid", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, os.Getpid()) })
	mux.HandleFunc("/child", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, child) })
	srv := &http.Server{Addr: *addr, Handler: mux}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Printf("echoserver: listening on %s", *addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	log.Printf("echoserver: stopped by SIGTERM")
}
