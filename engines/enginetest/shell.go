package enginetest

import (
	"fmt"
	"strings"
)

// ShellScript renders s as a POSIX sh script (dash, bash and busybox sh
// compatible) for harnesses whose engine runs `sh -c SCRIPT`. Output bytes
// are written with printf octal escapes, so any byte passes; Repeat becomes
// a loop, which keeps the script short (Linux limits one argument to
// 128 KiB).
func ShellScript(s Scenario) string {
	var b strings.Builder
	for _, st := range s.Steps {
		switch {
		case st.Stdout != "" || st.Stderr != "":
			var cmd string
			if st.Stdout != "" {
				cmd = "printf '" + printfEscape(st.Stdout) + "'"
			} else {
				cmd = "printf '" + printfEscape(st.Stderr) + "' >&2"
			}
			if st.Repeat > 1 {
				fmt.Fprintf(&b, "i=0; while [ $i -lt %d ]; do %s; i=$((i+1)); done\n", st.Repeat, cmd)
			} else {
				b.WriteString(cmd + "\n")
			}
		case st.PrintEnv != "":
			fmt.Fprintf(&b, "printf '%%s\\n' \"${%s}\"\n", st.PrintEnv)
		case st.File != "":
			if i := strings.LastIndex(st.File, "/"); i > 0 {
				fmt.Fprintf(&b, "mkdir -p %s\n", shQuote(st.File[:i]))
			}
			fmt.Fprintf(&b, "printf '%s' > %s\n", printfEscape(st.Content), shQuote(st.File))
		case st.Symlink != "":
			if i := strings.LastIndex(st.Symlink, "/"); i > 0 {
				fmt.Fprintf(&b, "mkdir -p %s\n", shQuote(st.Symlink[:i]))
			}
			fmt.Fprintf(&b, "ln -s %s %s\n", shQuote(st.Target), shQuote(st.Symlink))
		case st.Background:
			b.WriteString("sleep 3600 &\n")
			if st.PIDFile != "" {
				fmt.Fprintf(&b, "echo $! > %s\n", shQuote(st.PIDFile))
			}
		case st.SleepUntilKilled:
			b.WriteString("sleep 3600 &\n")
			if st.PIDFile != "" {
				fmt.Fprintf(&b, "echo $! > %s\n", shQuote(st.PIDFile))
			}
			if st.Announce != "" {
				fmt.Fprintf(&b, "printf '%s'\n", printfEscape(st.Announce))
			}
			b.WriteString("wait\n")
		}
	}
	fmt.Fprintf(&b, "exit %d\n", s.ExitCode)
	return b.String()
}

// printfEscape escapes s for a single-quoted printf format: every byte
// that is not plainly printable becomes a 3-digit octal escape.
func printfEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '\'' && c != '\\' && c != '%' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "\\%03o", c)
	}
	return b.String()
}

func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
