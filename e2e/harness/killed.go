package harness

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RunKilled simulates a test run killed in the middle: it runs test helper
// of the current test binary with env added, reads its output until ready
// accepts a line, then SIGKILLs it, so none of its teardown runs. It
// returns the accepted line; the test fails, showing the helper's output,
// when the helper ends or timeout passes first. The helper is the calling
// test itself (t.Name()), which does the killed run's part when env says
// so: a helper of its own would be a test that passes having checked
// nothing.
func RunKilled(t *testing.T, helper string, env []string, timeout time.Duration, ready func(line string) bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+helper+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var transcript strings.Builder
	line, found := "", false
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		transcript.WriteString(sc.Text() + "\n")
		if ready(sc.Text()) {
			line, found = sc.Text(), true
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !found {
		t.Fatalf("%s did not get ready:\n%s%s", helper, transcript.String(), stderr.String())
	}
	return line
}
