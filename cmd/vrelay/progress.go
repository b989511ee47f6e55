package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// progress shows how far a long operation got, on stderr: on a terminal a
// bar rewritten in place, otherwise (a pipe, a log file, CI) a plain line
// per tenth of the work, so logs stay readable. Use it from one goroutine.
//
//	p := newProgress(stderr, "replayed", "dead letters") // replayed 120/1000 dead letters
//	p.update(done, total, "")
//	p.done()
type progress struct {
	w      io.Writer
	verb   string
	noun   string
	tty    bool
	shown  bool
	tenths int
}

// isTerminal reports whether f (an output or an input) is a terminal;
// tests replace it.
var isTerminal = func(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

func newProgress(w io.Writer, verb, noun string) *progress {
	return &progress{w: w, verb: verb, noun: noun, tty: isTerminal(w)}
}

const barWidth = 30

// update shows done of total, with an optional detail after it.
func (p *progress) update(done, total int, detail string) {
	line := fmt.Sprintf("%s %d/%d %s", p.verb, done, total, p.noun)
	if detail != "" {
		line += " (" + detail + ")"
	}
	if p.tty {
		bar := strings.Repeat("-", barWidth)
		if total > 0 {
			n := min(barWidth, done*barWidth/total)
			bar = strings.Repeat("#", n) + bar[n:]
		}
		fmt.Fprintf(p.w, "\r[%s] %s\x1b[K", bar, line)
		p.shown = true
		return
	}
	if total == 0 {
		return
	}
	if tenths := min(10, done*10/total); tenths > p.tenths {
		p.tenths = tenths
		fmt.Fprintln(p.w, line)
	}
}

// done ends the line in place on a terminal.
func (p *progress) done() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}
