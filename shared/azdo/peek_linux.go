package azdo

import (
	"net"
	"syscall"
	"unsafe"
)

// Poll events of poll(2): the peer closed its side, hung up, or an error is pending.
const (
	pollERR   = 0x8
	pollHUP   = 0x10
	pollRDHUP = 0x2000
)

// peekOpen asks the kernel, without waiting or reading, whether the peer has closed
// conn or reset it. Data waiting before the close (a TLS close_notify, HTTP/2
// settings) does not hide the close, as it would from a peek at the queue.
func peekOpen(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	err = raw.Control(func(fd uintptr) {
		p := struct {
			fd              int32
			events, revents int16
		}{fd: int32(fd), events: pollRDHUP}
		var now syscall.Timespec // zero: do not wait
		n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&p)), 1, uintptr(unsafe.Pointer(&now)), 0, 0, 0)
		if errno == 0 && n == 1 && p.revents&(pollRDHUP|pollHUP|pollERR) != 0 {
			alive = false
		}
	})
	return alive && err == nil
}
