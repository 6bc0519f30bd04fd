// api stands in for a service: it prints where it runs and its port.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Printf("api on %s, port %s\n", runtime.GOARCH, os.Getenv("PORT"))
}
