package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// figure is one measured value: one `bench:` line.
type figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Target is the goal the issue sets, in words, when there is one.
	Target string `json:"target,omitempty"`
	// Met says whether Value reaches Target.
	Met *bool `json:"met,omitempty"`
}

// report collects the figures, prints each as it comes, and writes them
// as JSON and into BENCHMARKS.md.
type report struct {
	mu      sync.Mutex
	out     io.Writer
	figures []figure
	micro   []figure
	notes   []string
	details map[string]any
}

func newReport(out io.Writer) *report {
	return &report{out: out, details: map[string]any{}}
}

// add records a figure and prints its line: `bench: <name> <value> <unit>`.
func (r *report) add(name string, v float64, unit string) {
	r.addTarget(name, v, unit, "", nil)
}

// addTarget records a figure with its target; met says whether v reaches it.
func (r *report) addTarget(name string, v float64, unit, target string, met func(float64) bool) {
	f := figure{Name: name, Value: v, Unit: unit, Target: target}
	if met != nil {
		ok := met(v)
		f.Met = &ok
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.figures = append(r.figures, f)
	fmt.Fprintf(r.out, "bench: %s %s %s\n", name, formatValue(v), unit)
}

func (r *report) addMicro(f figure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.micro = append(r.micro, f)
	fmt.Fprintf(r.out, "bench: %s %s %s\n", f.Name, formatValue(f.Value), f.Unit)
}

// note keeps a remark (a scenario that failed, a measurement caveat) for
// the JSON file and BENCHMARKS.md.
func (r *report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *report) detail(key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.details[key] = v
}

// formatValue prints whole numbers above 100 without decimals, smaller
// values with up to three significant decimals.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "NaN"
	case math.Abs(v) >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// machine describes where the figures were measured.
type machine struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Kernel  string `json:"kernel,omitempty"`
	LoadAvg string `json:"load_avg,omitempty"`
	MemMiB  uint64 `json:"mem_mib,omitempty"`
}

func machineFacts() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if total, err := procMeminfo("MemTotal"); err == nil {
		m.MemMiB = total >> 20
	}
	return m
}

func procMeminfo(field string) (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no " + field)
}

// gitCommit returns the short commit and whether the tree has changes, or
// "" when git or the repository is not there.
func gitCommit() (string, bool) {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "", false
	}
	st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	return strings.TrimSpace(string(out)), len(bytes.TrimSpace(st)) > 0
}

// results is the JSON file.
type results struct {
	Date     string         `json:"date"`
	Commit   string         `json:"commit,omitempty"`
	Dirty    bool           `json:"dirty,omitempty"`
	Machine  machine        `json:"machine"`
	Settings map[string]any `json:"settings"`
	WallS    float64        `json:"wall_s"`
	Figures  []figure       `json:"figures"`
	Micro    []figure       `json:"micro,omitempty"`
	Details  map[string]any `json:"details,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
}

func (r *report) results(start time.Time, m machine, settings map[string]any) results {
	r.mu.Lock()
	defer r.mu.Unlock()
	commit, dirty := gitCommit()
	return results{
		Date:     start.UTC().Format(time.RFC3339),
		Commit:   commit,
		Dirty:    dirty,
		Machine:  m,
		Settings: settings,
		WallS:    math.Round(time.Since(start).Seconds()*10) / 10,
		Figures:  r.figures,
		Micro:    r.micro,
		Details:  r.details,
		Notes:    r.notes,
	}
}

func writeJSON(path string, res results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Markers around the generated part of BENCHMARKS.md.
const (
	mdBegin = "<!-- bench:begin (generated by `make bench`; edit outside the markers) -->"
	mdEnd   = "<!-- bench:end -->"
)

// updateMarkdown replaces what lies between the markers in path with the
// figures of res.
func updateMarkdown(path string, res results) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, mdBegin), strings.Index(s, mdEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q markers", path, mdBegin, mdEnd)
	}
	out := s[:i+len(mdBegin)] + "\n" + renderMarkdown(res) + s[j:]
	if quick, _ := res.Settings["quick"].(bool); !quick {
		out = updateHistory(out, res)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// The history table of BENCHMARKS.md: one row per commit that `make bench`
// measured, newest first, with the ratios that say what a change bought.
// A run of a commit already in the table replaces its row.
const (
	histBegin = "<!-- history:begin (one row per measured commit, newest first; generated by `make bench`) -->"
	histEnd   = "<!-- history:end -->"
	histRows  = 20
)

// historyFigures are the columns of the history table.
var historyFigures = []string{
	"pipeline_vs_relay", "pipeline_vs_relay_cpu", "pipeline_cpu_us_per_event", "filter_data_ns_per_event",
	"webhook_vs_baseline", "vcenter_cpu_us_per_event", "vcenter_ingest_cpu_us_per_event",
}

// updateHistory adds res to the history table of the markdown s, if s has
// one, and returns the new text.
func updateHistory(s string, res results) string {
	i, j := strings.Index(s, histBegin), strings.Index(s, histEnd)
	if i < 0 || j < i {
		return s
	}
	commit := res.Commit
	if commit == "" {
		return s
	}
	if res.Dirty {
		commit += "+"
	}
	row := fmt.Sprintf("| %s | `%s` | %s |", res.Date[:min(len(res.Date), 10)], commit, mdCell(gitSubject()))
	byName := map[string]float64{}
	for _, f := range res.Figures {
		byName[f.Name] = f.Value
	}
	for _, name := range historyFigures {
		if v, ok := byName[name]; ok {
			row += " " + formatValue(v) + " |"
		} else {
			row += " – |"
		}
	}
	rows := []string{row}
	for _, line := range strings.Split(s[i+len(histBegin):j], "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "| 2") || strings.Contains(line, "| `"+commit+"` |") {
			continue // not a row, or this commit's row, replaced
		}
		if len(rows) < histRows {
			rows = append(rows, line)
		}
	}
	head := "| Date | Commit | Change |"
	sep := "|---|---|---|"
	for _, name := range historyFigures {
		head += " `" + name + "` |"
		sep += "--:|"
	}
	table := "\n" + head + "\n" + sep + "\n" + strings.Join(rows, "\n") + "\n\n"
	return s[:i+len(histBegin)] + "\n" + table + s[j:]
}

// gitSubject is the subject line of the commit measured, or "".
func gitSubject() string {
	out, err := exec.Command("git", "log", "-1", "--format=%s").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// mdCell makes s safe in a table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 90 {
		s = s[:87] + "..."
	}
	return s
}

func renderMarkdown(res results) string {
	var b strings.Builder
	m := res.Machine
	commit := res.Commit
	if res.Dirty {
		commit += " (with uncommitted changes)"
	}
	fmt.Fprintf(&b, "\nMeasured %s at commit %s on %s (%d cores, %d MiB), %s %s/%s; load average %s when it started. The scenarios took %.0f s.\n\n",
		res.Date, orDash(commit), orDash(m.CPU), m.Cores, m.MemMiB, m.Go, m.OS, m.Arch, orDash(m.LoadAvg), res.WallS)
	b.WriteString("| Figure | Value | Unit | Target | Met |\n|---|--:|---|---|:-:|\n")
	for _, f := range res.Figures {
		met := ""
		if f.Met != nil {
			met = "no"
			if *f.Met {
				met = "yes"
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name, formatValue(f.Value), f.Unit, f.Target, met)
	}
	if len(res.Micro) > 0 {
		b.WriteString("\nGo benchmarks (`go test -bench`), same run:\n\n| Benchmark | Value | Unit |\n|---|--:|---|\n")
		for _, f := range res.Micro {
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.Name, formatValue(f.Value), f.Unit)
		}
	}
	if len(res.Notes) > 0 {
		b.WriteString("\nNotes from this run:\n\n")
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseGoBench reads `go test -bench -benchmem` output and returns a figure
// per benchmark and unit, named go_<package>_<benchmark>[_<unit>].
func parseGoBench(r io.Reader) []figure {
	var out []figure
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p[strings.LastIndexByte(p, '/')+1:]
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if k := strings.LastIndexByte(name, '-'); k > 0 {
			if _, err := strconv.Atoi(name[k+1:]); err == nil {
				name = name[:k] // the GOMAXPROCS suffix
			}
		}
		name = "go_" + pkg + "_" + sanitize(name)
		for k := 2; k+1 < len(f); k += 2 {
			v, err := strconv.ParseFloat(f[k], 64)
			if err != nil {
				continue
			}
			unit := f[k+1]
			if unit == "MB/s" || unit == "B/op" {
				continue // ns/op and allocs/op say it; keep the list short
			}
			suffix := ""
			switch unit {
			case "ns/op":
			case "allocs/op":
				suffix = "_allocs"
			default:
				suffix = "_" + sanitize(unit)
			}
			out = append(out, figure{Name: name + suffix, Value: v, Unit: unit})
		}
	}
	return out
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, s)
}
