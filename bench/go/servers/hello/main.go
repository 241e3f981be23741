// hello: the Go reference for `bench/run.sh server` and the suite's server row — a net/http server answering every request
// with "Hello, World!\n" (the same body as colony's examples/http_server.cpp). Standard library
// only. GOMAXPROCS follows -procs (0: Go's default, every core). With -tls-cert and -tls-key
// (PEM files) it serves HTTPS, as http.ListenAndServeTLS does (HTTP/2 is offered by ALPN; wrk
// does not ask for it and speaks HTTP/1.1).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	procs := flag.Int("procs", 0, "GOMAXPROCS (0: default)")
	cert := flag.String("tls-cert", "", "certificate chain file (PEM): serve HTTPS")
	key := flag.String("tls-key", "", "private key file (PEM)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "Hello, World!\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if (*cert == "") != (*key == "") {
		log.Fatal("-tls-cert and -tls-key go together")
	}
	scheme := ""
	if *cert != "" {
		scheme = "https://"
	}
	fmt.Printf("listening on %s%s (procs %d)\n", scheme, ln.Addr(), runtime.GOMAXPROCS(0))
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if *cert != "" {
		err = srv.ServeTLS(ln, *cert, *key)
	} else {
		err = srv.Serve(ln)
	}
	if err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
