package downcity_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// city is the real City the tests talk to (see TestMain).
var city struct {
	env                               map[string]string
	addr, adminKey, studio, userToken string
}

func TestMain(m *testing.M) {
	os.Exit(runWithCity(m))
}

func runWithCity(m *testing.M) int {
	dataDir, err := os.MkdirTemp("", "downcity-go-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dataDir)
	bin, err := cityBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logFile, err := os.Create(filepath.Join(dataDir, "city.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		env := readDevEnv(filepath.Join(dataDir, "dev.env"))
		if env["DOWNCITY_ADDR"] != "" && env["DOWNCITY_ADMIN_KEY"] != "" &&
			env["DOWNCITY_STUDIO_ID"] != "" && env["DOWNCITY_USER_TOKEN"] != "" {
			city.env = env
			city.addr, city.adminKey = env["DOWNCITY_ADDR"], env["DOWNCITY_ADMIN_KEY"]
			city.studio, city.userToken = env["DOWNCITY_STUDIO_ID"], env["DOWNCITY_USER_TOKEN"]
			break
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logFile.Name())
			fmt.Fprintf(os.Stderr, "City exited (%v):\n%s\n", err, log)
			return 1
		default:
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "City wrote no dev.env within 60 s")
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
	return m.Run()
}

// cityBinary is $DOWNCITY_BIN, else the newest of target/{release,debug}/downcity.
func cityBinary() (string, error) {
	if bin := os.Getenv("DOWNCITY_BIN"); bin != "" {
		return bin, nil
	}
	best, bestTime := "", time.Time{}
	for _, p := range []string{"../../target/release/downcity", "../../target/debug/downcity"} {
		if info, err := os.Stat(p); err == nil && info.ModTime().After(bestTime) {
			abs, _ := filepath.Abs(p)
			best, bestTime = abs, info.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("no City binary: run `cargo build --bin downcity` (or set DOWNCITY_BIN)")
	}
	return best, nil
}

func readDevEnv(path string) map[string]string {
	env := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return env
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if key, value, ok := strings.Cut(scanner.Text(), "="); ok {
			env[strings.TrimSpace(key)] = strings.TrimSpace(value)
		}
	}
	return env
}
