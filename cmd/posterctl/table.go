package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/posterctl/posterctl/supervisor"
)

// writeStatusTable renders st for a terminal: a header line about the
// supervisor, then one row per child.
func writeStatusTable(w io.Writer, st supervisor.Status, now time.Time) error {
	sv := st.Supervisor
	fmt.Fprintf(w, "supervisor pid %d, up %s", sv.Pid, fmtDuration(sv.UptimeS))
	if sv.RSSBytes > 0 {
		fmt.Fprintf(w, ", rss %s", fmtBytes(sv.RSSBytes))
	}
	if sv.URL != "" {
		fmt.Fprintf(w, ", app %s", sv.URL)
	}
	if sv.HealthURL != "" {
		fmt.Fprintf(w, ", health %s", sv.HealthURL)
	}
	if sv.Store != "" {
		fmt.Fprintf(w, ", store %s", sv.Store)
	}
	fmt.Fprintf(w, ", run dir %s", sv.RunDir)
	if sv.Stopping {
		fmt.Fprint(w, " (stopping)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tSTATE\tHEALTH\tPORT\tRESTARTS\tUPTIME\tCPU%\tRSS\tLAST EXIT\tNEXT RETRY")
	for _, c := range st.Children {
		pid, up, cpu, rss := "-", "-", "-", "-"
		if c.Pid > 0 {
			pid = strconv.Itoa(c.Pid)
			up = fmtDuration(c.UptimeS)
			cpu = fmt.Sprintf("%.1f", c.CPUPercent)
			rss = fmtBytes(c.RSSBytes)
		}
		last, next := dash(c.LastExit), "-"
		if c.NextRetry != nil {
			next = "in " + max(0, c.NextRetry.Sub(now)).Round(100*time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
			c.Name, pid, c.State, c.Health, c.Port, c.Restarts, up, cpu, rss, last, next)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range st.Children {
		if c.LastError != "" {
			fmt.Fprintf(w, "%s: %s\n", c.Name, c.LastError)
		}
		if c.Reason != "" {
			fmt.Fprintf(w, "%s: %s\n", c.Name, c.Reason)
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtDuration(secs float64) string {
	return (time.Duration(secs * float64(time.Second))).Round(time.Second).String()
}

func fmtBytes(n uint64) string {
	const mib = 1 << 20
	return fmt.Sprintf("%.1f MiB", float64(n)/mib)
}
