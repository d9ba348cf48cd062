package awstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// ErrNoMoto is StartMoto's answer where moto is not installed: an interop test then
// skips, saying so (make test needs only Go).
var ErrNoMoto = errors.New("moto_server is not installed (pip install 'moto[server]' boto3)")

// StartMoto runs moto's AWS server (a Secrets Manager, a DynamoDB, … that nobody here
// wrote) on a free 127.0.0.1 port, with home as its HOME and nothing else of this
// machine's environment but PATH, and returns its URL and the function that stops it
// (the pyenv shim starts a child: both stop).
func StartMoto(home string) (url string, stop func(), err error) {
	server, err := exec.LookPath("moto_server")
	if err != nil {
		return "", nil, ErrNoMoto
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(server, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("moto_server did not listen on %s within 15 s", addr)
		}
	}
}
