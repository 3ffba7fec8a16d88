package native

import (
	"fmt"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/workergen/workergen/task"
)

// The resource monitor (payload features.resourceMonitor, default true;
// worker config enableResourceMonitor, default true), as generic-worker's:
// while a task runs the host's memory is sampled every monitorInterval
// (upstream's 0.5 s). When used memory is at least maxMemoryUsagePercent of
// the total (default 90) AND available memory is at most
// minAvailableMemoryBytes (default 500 MiB) in every sample for longer than
// allowedHighMemoryDurationSecs (default 5), the task is killed and
// resolves failed, unless disableOOMProtection. When the task ends, the
// task log gets a summary: peak and average used memory, average available
// memory, total memory and average CPU use of the host.

// monitorInterval is the sampling period (upstream: 0.5 s).
const monitorInterval = 500 * time.Millisecond

// memSample is one reading of the host's memory, in bytes, and the CPU
// use since the previous reading, in percent of all CPUs.
type memSample struct {
	total, used, available uint64
	cpuPercent             float64
	cpuOK                  bool
}

// monitorConfig is the resource monitor's worker config.
type monitorConfig struct {
	enabled      bool
	minAvailable uint64
	maxPercent   int
	allowed      time.Duration
	noAbort      bool // disableOOMProtection
	interval     time.Duration
	sample       func() (memSample, error)
}

func newMonitorConfig(cfg Config) monitorConfig {
	c := monitorConfig{enabled: true, minAvailable: 524288000, maxPercent: 90, allowed: 5 * time.Second,
		noAbort: cfg.DisableOOMProtection, interval: monitorInterval, sample: hostSample}
	if cfg.EnableResourceMonitor != nil {
		c.enabled = *cfg.EnableResourceMonitor
	}
	if cfg.MinAvailableMemoryBytes != nil {
		c.minAvailable = *cfg.MinAvailableMemoryBytes
	}
	if cfg.MaxMemoryUsagePercent != nil {
		c.maxPercent = *cfg.MaxMemoryUsagePercent
	}
	if cfg.AllowedHighMemoryDurationSecs != nil {
		c.allowed = time.Duration(*cfg.AllowedHighMemoryDurationSecs) * time.Second
	}
	return c
}

// forTask returns the monitor config for a payload, or nil when the
// monitor is off (worker config or features.resourceMonitor: false).
func (c monitorConfig) forTask(p multiuserPayload) *monitorConfig {
	if !c.enabled || (p.Features.ResourceMonitor != nil && !*p.Features.ResourceMonitor) {
		return nil
	}
	return &c
}

// hostSample reads the host's memory (gopsutil: /proc/meminfo on Linux,
// host_statistics on macOS, GlobalMemoryStatusEx on Windows) and CPU use.
func hostSample() (memSample, error) {
	vm, err := mem.VirtualMemory()
	if err != nil {
		return memSample{}, err
	}
	s := memSample{total: vm.Total, used: vm.Total - vm.Available, available: vm.Available}
	if p, err := cpu.Percent(0, false); err == nil && len(p) == 1 {
		s.cpuPercent, s.cpuOK = p[0], true
	}
	return s, nil
}

// killer stops a task: the sandbox's Kill.
type killer interface{ Kill() error }

// monitor samples one run.
type monitor struct {
	cfg  *monitorConfig
	tc   *task.Context
	k    killer
	done chan struct{}
	end  sync.WaitGroup

	// Results, read after end.Wait.
	n, cpuN                 int
	peak, sumUsed, sumAvail uint64
	total                   uint64
	sumCPU                  float64
	aborted                 bool
	sampleErr               error
}

// startMonitor starts sampling for a run; nil cfg means no monitor.
func startMonitor(cfg *monitorConfig, tc *task.Context, k killer) *monitor {
	if cfg == nil {
		return nil
	}
	m := &monitor{cfg: cfg, tc: tc, k: k, done: make(chan struct{})}
	m.end.Add(1)
	go m.loop()
	return m
}

func (m *monitor) loop() {
	defer m.end.Done()
	t := time.NewTicker(m.cfg.interval)
	defer t.Stop()
	var highSince time.Time
	for {
		now := time.Now()
		s, err := m.cfg.sample()
		if err != nil {
			m.sampleErr = err
		} else if m.record(s) {
			if highSince.IsZero() {
				highSince = now
			} else if now.Sub(highSince) > m.cfg.allowed && !m.cfg.noAbort && !m.aborted {
				m.aborted = true
				m.tc.Logf("resource monitor: memory used %s of %s (%d%%), %s available: above the thresholds (maxMemoryUsagePercent %d, minAvailableMemoryBytes %d) for longer than allowedHighMemoryDurationSecs (%s); aborting the task",
					human(s.used), human(s.total), percent(s.used, s.total), human(s.available), m.cfg.maxPercent, m.cfg.minAvailable, m.cfg.allowed)
				_ = m.k.Kill()
			}
		} else {
			highSince = time.Time{}
		}
		select {
		case <-m.done:
			return
		case <-t.C:
		}
	}
}

// record adds s to the statistics and reports whether it is above both
// thresholds.
func (m *monitor) record(s memSample) bool {
	m.n++
	m.total = s.total
	m.peak = max(m.peak, s.used)
	m.sumUsed += s.used
	m.sumAvail += s.available
	if s.cpuOK {
		m.cpuN++
		m.sumCPU += s.cpuPercent
	}
	return percent(s.used, s.total) >= m.cfg.maxPercent && s.available <= m.cfg.minAvailable
}

// stop ends sampling; safe on nil and more than once.
func (m *monitor) stop() {
	if m == nil {
		return
	}
	select {
	case <-m.done:
	default:
		close(m.done)
	}
	m.end.Wait()
}

// summary writes the run's figures to the task log.
func (m *monitor) summary() {
	if m == nil {
		return
	}
	m.stop()
	if m.n == 0 {
		if m.sampleErr != nil {
			m.tc.Logf("resource monitor: could not read memory use: %v", m.sampleErr)
		}
		return
	}
	cpuText := "unknown"
	if m.cpuN > 0 {
		cpuText = fmt.Sprintf("%.1f%%", m.sumCPU/float64(m.cpuN))
	}
	m.tc.Logf("resource monitor: peak system memory used %s, average system memory used %s, average available system memory %s, total system memory %s, average CPU use %s (%d samples)",
		human(m.peak), human(m.sumUsed/uint64(m.n)), human(m.sumAvail/uint64(m.n)), human(m.total), cpuText, m.n)
}

func percent(part, whole uint64) int {
	if whole == 0 {
		return 0
	}
	return int(part * 100 / whole)
}

// human renders a byte count in MiB.
func human(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
