package harness

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procInfo is what the leftover scan needs of one process.
type procInfo struct {
	pid, ppid int
	state     byte
	start     uint64 // clock ticks after boot, from /proc/<pid>/stat
	cmdline   string
	netns     string // "net:[inode]"
	cgroup    string
}

func (p procInfo) String() string {
	return fmt.Sprintf("process %d (%.120s)", p.pid, p.cmdline)
}

// readStat reads the state, parent and start time of pid.
func readStat(pid int) (procInfo, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return procInfo{pid: pid, ppid: ppid, state: f[0][0], start: start}, nil
}

// listProcs reads every live (not zombie) process.
func listProcs() (map[int]procInfo, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := make(map[int]procInfo)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := readStat(pid)
		if err != nil || p.state == 'Z' {
			continue // gone meanwhile, or dead and waiting to be reaped
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		p.cmdline = strings.TrimSpace(string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		p.netns, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		p.cgroup = string(cg)
		procs[pid] = p
	}
	return procs, nil
}

// marks are what identifies the harness's processes.
type marks struct {
	pids       map[int]bool    // from pidfiles, start time checked
	netns      map[string]bool // "net:[inode]" of vxe2e-* namespaces
	containers []string        // container ids found in the data roots
}

func collectMarks() marks {
	m := marks{pids: map[int]bool{}, netns: map[string]bool{}}
	nsFiles, _ := filepath.Glob("/run/netns/" + namePrefix + "*")
	for _, f := range nsFiles {
		var st syscall.Stat_t
		if syscall.Stat(f, &st) == nil {
			m.netns[fmt.Sprintf("net:[%d]", st.Ino)] = true
		}
	}
	ids, _ := filepath.Glob("/var/lib/" + namePrefix + "*/docker/containers/*")
	for _, dir := range ids {
		if id := filepath.Base(dir); len(id) == 64 {
			m.containers = append(m.containers, id)
		}
	}
	pidfiles, _ := filepath.Glob("/run/" + namePrefix + "*/procs/*.pid")
	for _, f := range pidfiles {
		var pid int
		var start uint64
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, _ := fmt.Sscan(string(b), &pid, &start); n != 2 {
			continue
		}
		if st, err := readStat(pid); err == nil && st.start == start {
			m.pids[pid] = true
		}
	}
	return m
}

// match reports whether p belongs to the harness. dockerd's and containerd's
// own pidfiles hold only a pid, so they are recognised by their command
// lines, which name /run/vxe2e-*.
func (m marks) match(p procInfo) bool {
	switch {
	case m.pids[p.pid], m.netns[p.netns]:
		return true
	case strings.Contains(p.cmdline, "/run/"+namePrefix), strings.Contains(p.cmdline, "/var/lib/"+namePrefix):
		return true
	}
	for _, id := range m.containers {
		if strings.Contains(p.cgroup, id) {
			return true
		}
	}
	return false
}

// harnessProcs finds the harness's processes and all their descendants
// (containers below their shims), never this process or its ancestors.
func harnessProcs() ([]procInfo, error) {
	procs, err := listProcs()
	if err != nil {
		return nil, err
	}
	keep := map[int]bool{1: true}
	for pid := os.Getpid(); pid > 1; {
		keep[pid] = true
		p, ok := procs[pid]
		if !ok {
			break
		}
		pid = p.ppid
	}
	m := collectMarks()
	found := map[int]bool{}
	for pid, p := range procs {
		if !keep[pid] && m.match(p) {
			found[pid] = true
		}
	}
	for grew := true; grew; {
		grew = false
		for pid, p := range procs {
			if !found[pid] && !keep[pid] && found[p.ppid] {
				found[pid], grew = true, true
			}
		}
	}
	var out []procInfo
	for pid := range found {
		out = append(out, procs[pid])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out, nil
}

// killHarnessProcs SIGKILLs the harness's processes until none is left;
// dockerd restarts containerd, so one pass may not be enough.
func killHarnessProcs() error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		procs, err := harnessProcs()
		if err != nil {
			return fmt.Errorf("scan processes: %w", err)
		}
		if len(procs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still running after SIGKILL: %v", procs)
		}
		for _, p := range procs {
			// ESRCH: it ended meanwhile, which is what we want.
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
