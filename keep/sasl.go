package keep

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The authentication conversation (SASL, as D-Bus uses it), both ways:
// the keeper is the server for apps and a client of the bus. Only
// EXTERNAL is spoken: the kernel vouches for a unix socket's peer.

// errRejected is wrapped when a peer fails to authenticate.
var errRejected = errors.New("keep: authentication rejected")

// maxAuthCommands bounds the conversation with an app that never gets it
// right.
const maxAuthCommands = 32

// authorize decides whether an app may connect: the kernel's word on its
// uid (SO_PEERCRED) must be ours, and the identity it claims, if any,
// that same uid.
func authorize(peerUID, ourUID int, identity string) bool {
	return peerUID == ourUID && (identity == "" || identity == strconv.Itoa(peerUID))
}

// serverAuth runs the server side of the conversation on s, whose peer the
// kernel says has uid peerUID. It returns once the app has said BEGIN,
// with whether it asked to pass fds; bytes after BEGIN stay in s's buffer.
func serverAuth(s *sock, guid string, peerUID, ourUID int) (unixFD bool, err error) {
	for s.end-s.start < 1 {
		if err := s.fill(true); err != nil {
			return false, fmt.Errorf("read credentials byte: %w", err)
		}
	}
	if s.buf[s.start] != 0 {
		return false, fmt.Errorf("%w: first byte %#x is not NUL", errRejected, s.buf[s.start])
	}
	s.start++
	const (
		waitAuth = iota
		waitData
		authed
	)
	state := waitAuth
	reply := func(line string) error {
		_, err := io.WriteString(s.c, line+"\r\n")
		return err
	}
	check := func(hexID string) error {
		id, err := hex.DecodeString(hexID)
		if err != nil || !authorize(peerUID, ourUID, string(id)) {
			state = waitAuth
			return reply("REJECTED EXTERNAL")
		}
		state = authed
		return reply("OK " + guid)
	}
	for range maxAuthCommands {
		line, err := s.readLine()
		if err != nil {
			return false, fmt.Errorf("read authentication: %w", err)
		}
		cmd, arg, _ := strings.Cut(line, " ")
		switch {
		case cmd == "AUTH" && state != authed:
			mech, resp, hasResp := strings.Cut(arg, " ")
			switch {
			case mech != "EXTERNAL":
				err = reply("REJECTED EXTERNAL")
			case !hasResp:
				state = waitData
				err = reply("DATA")
			default:
				err = check(resp)
			}
		case cmd == "DATA" && state == waitData:
			err = check(arg)
		case (cmd == "CANCEL" || cmd == "ERROR") && state != authed:
			state = waitAuth
			err = reply("REJECTED EXTERNAL")
		case cmd == "NEGOTIATE_UNIX_FD" && state == authed:
			unixFD = true
			err = reply("AGREE_UNIX_FD")
		case cmd == "BEGIN" && state == authed:
			return unixFD, nil
		case cmd == "AUTH" || cmd == "DATA" || cmd == "CANCEL" || cmd == "ERROR" ||
			cmd == "NEGOTIATE_UNIX_FD" || cmd == "BEGIN":
			err = reply(`ERROR "not expected now"`)
		default:
			err = reply(`ERROR "unknown command"`)
		}
		if err != nil {
			return false, fmt.Errorf("write authentication: %w", err)
		}
	}
	return false, fmt.Errorf("%w: no success in %d commands", errRejected, maxAuthCommands)
}

// clientAuth authenticates s to the bus as uid, asking to pass fds if
// unixFD. It sends its whole side at once, as sd-bus does, so that it
// costs one round trip. It returns the bus's guid and whether fds may be
// passed.
func clientAuth(s *sock, uid int, unixFD bool) (guid string, fdOK bool, err error) {
	msg := "\x00AUTH EXTERNAL " + hex.EncodeToString([]byte(strconv.Itoa(uid))) + "\r\n"
	if unixFD {
		msg += "NEGOTIATE_UNIX_FD\r\n"
	}
	msg += "BEGIN\r\n"
	if _, err := io.WriteString(s.c, msg); err != nil {
		return "", false, fmt.Errorf("write authentication: %w", err)
	}
	line, err := s.readLine()
	if err != nil {
		return "", false, fmt.Errorf("read authentication: %w", err)
	}
	guid, ok := strings.CutPrefix(line, "OK ")
	if !ok {
		return "", false, fmt.Errorf("%w: the bus answered %q", errRejected, line)
	}
	if unixFD {
		line, err := s.readLine()
		if err != nil {
			return "", false, fmt.Errorf("read authentication: %w", err)
		}
		fdOK = line == "AGREE_UNIX_FD"
	}
	return guid, fdOK, nil
}
