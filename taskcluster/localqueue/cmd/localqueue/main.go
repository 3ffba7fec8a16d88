// Command localqueue runs the embedded Taskcluster Queue
// (taskcluster/localqueue) for people, and adds tasks to it:
//
//	localqueue [serve] [-addr 127.0.0.1:8080] [-dir DIR] [-tasks FILES] ...
//	localqueue create [-dir DIR] FILE...
//
// serve runs in this process until SIGINT, SIGTERM or SIGHUP, then stops
// the server (claimWork long polls released, the port closed) and prints
// every task's resolution. create reads task files (JSON or YAML task
// definitions, as examples/ and `run` use, with {{now+1h}}-style times) and
// creates them in the Queue serving from DIR through the Queue API.
//
// Exit codes: 0 done, 64 bad command line or task file, 1 anything else
// (the Queue refused a task, the port is taken, ...).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := (&localqueue.Command{Parse: parse, Stdout: os.Stdout, Log: os.Stderr}).Run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localqueue:", err)
		os.Exit(localqueue.ExitCode(err))
	}
}

func parse(data []byte, now time.Time) (localqueue.TaskDefinition, error) {
	return worker.ParseTaskFile(data, now)
}
