package gwconfig

import (
	"fmt"
	"slices"
	"strings"
)

// defaultProvisionerID is generic-worker's provisionerId default.
const defaultProvisionerID = "test-provisioner"

// defaultWorkerGroup is generic-worker's workerGroup default
// (references/generic-worker/usage.mdx); worker-runner always writes
// workerGroup.
const defaultWorkerGroup = "test-worker-group"

// apply records the meaning of a checked key (name as in the file).
func (p *parser) apply(name string, k Key, val any) {
	switch {
	case k.Target == targetLocation:
		p.location(k.Name, val)
	case k.Target == targetPoolPart, k.Name == "livelogExposePort":
		// combined after every key is read: pool, liveLog
	case k.Target == "":
		p.ignore(name, k.Note)
	case strings.HasPrefix(k.Target, "plugins."):
		plugin := strings.Split(k.Target, ".")[1]
		if !slices.Contains(p.opts.Plugins, plugin) {
			p.ignore(name, fmt.Sprintf("this worker has no %s plugin", plugin))
			return
		}
		p.set(name, k.Target, convert(k.Name, val))
	case strings.HasPrefix(k.Target, "engine."):
		// The resource monitor and multiuser keys are the native
		// engine's config.
		if p.opts.Engine != "native" {
			p.ignore(name, "only the native engine has this setting")
			return
		}
		p.set(name, k.Target, convert(k.Name, val))
	default:
		p.set(name, k.Target, convert(k.Name, val))
	}
}

// convert turns a generic-worker value into the workergen value of its
// target where the units or form differ.
func convert(name string, val any) any {
	switch name {
	case "createObjectArtifacts":
		if val.(bool) {
			return "object"
		}
		return "s3"
	case "requiredDiskSpaceMegabytes":
		return val.(int) << 20
	}
	return val
}

func (p *parser) ignore(name, note string) {
	p.cfg.Ignored = append(p.cfg.Ignored, name)
	p.cfg.notes[name] = note
}

// set puts val at the dotted path of the document; a path a native key
// already set is a conflict.
func (p *parser) set(name, path string, val any) {
	parts := strings.Split(path, ".")
	m := p.cfg.Document
	for i, part := range parts[:len(parts)-1] {
		next, exists := m[part]
		if !exists {
			sub := map[string]any{}
			m[part] = sub
			m = sub
			continue
		}
		sub, ok := next.(map[string]any)
		if !ok {
			p.errorf(name, "conflicts with workergen key %q, also set", strings.Join(parts[:i+1], "."))
			return
		}
		m = sub
	}
	leaf := parts[len(parts)-1]
	if _, exists := m[leaf]; exists {
		p.errorf(name, "conflicts with workergen key %q, also set", path)
		return
	}
	m[leaf] = val
}

func (p *parser) location(name string, val any) {
	l := &p.cfg.Location
	switch name {
	case "publicIP":
		l.PublicIP = val.(string)
	case "privateIP":
		l.PrivateIP = val.(string)
	case "instanceType":
		l.InstanceType = val.(string)
	case "instanceID":
		l.InstanceID = val.(string)
	case "region":
		l.Region = val.(string)
	case "availabilityZone":
		l.AvailabilityZone = val.(string)
	case "workerLocation":
		l.WorkerLocation = val.(string)
	case "workerTypeMetaData", "workerTypeMetadata":
		l.WorkerTypeMetadata = val.(map[string]any)
	}
}

// pool sets workerPoolId from workerPoolId or provisionerId/workerType,
// which must agree when both are given, and workerGroup to
// generic-worker's default when the file has none.
func (p *parser) pool() {
	prov, hasProv := p.vals["provisionerId"].(string)
	wt, hasWT := p.vals["workerType"].(string)
	pool, hasPool := p.vals["workerPoolId"].(string)
	if !hasProv {
		prov = defaultProvisionerID
	}
	switch {
	case hasWT && hasPool && pool != prov+"/"+wt:
		p.errorf(p.byKey["workerpoolid"], "%q disagrees with provisionerId/workerType %q", pool, prov+"/"+wt)
	case hasWT && !hasPool:
		p.set(p.byKey["workertype"], "workerPoolId", prov+"/"+wt)
	case hasProv && !hasWT && !hasPool:
		p.errorf(p.byKey["provisionerid"], "given without workerType")
	}
	if _, ok := p.vals["workerGroup"]; !ok && !p.invalid["workerGroup"] {
		if _, set := p.cfg.Document["workerGroup"]; !set {
			p.cfg.Document["workerGroup"] = defaultWorkerGroup
		}
	}
}

// liveLog turns livelogExposePort into the tasklog plugin's liveLog
// listener (readers reach it at publicIP when given).
func (p *parser) liveLog() {
	port, ok := p.vals["livelogExposePort"].(int)
	name := p.byKey["livelogexposeport"]
	switch {
	case !ok:
		return
	case port == 0:
		p.ignore(name, "0 (a random port) leaves the live log off; give a port to serve it")
		return
	case !slices.Contains(p.opts.Plugins, "tasklog"):
		p.ignore(name, "this worker has no tasklog plugin")
		return
	}
	live := map[string]any{"listenAddress": fmt.Sprintf(":%d", port)}
	if ip := p.cfg.Location.PublicIP; ip != "" {
		host := ip
		if strings.Contains(ip, ":") {
			host = "[" + ip + "]"
		}
		live["publicURL"] = fmt.Sprintf("http://%s:%d", host, port)
	}
	p.set(name, "plugins.tasklog.liveLog", live)
}

// required reports the required keys the file lacks.
func (p *parser) required() {
	for _, name := range Required {
		if _, ok := p.vals[name]; ok {
			continue
		}
		if p.invalid[name] {
			continue // already reported
		}
		if name == "workerType" {
			if _, ok := p.vals["workerPoolId"]; !ok && !p.invalid["workerPoolId"] {
				p.errs = append(p.errs, `key "workerType": required (or workerPoolId)`)
			}
			continue
		}
		p.errs = append(p.errs, fmt.Sprintf("key %q: required", name))
	}
}

// cotEnvironment records the worker's location in the chainoftrust
// plugin's environment (plugins.chainoftrust.environment), where each
// certificate's `environment` comes from, when the profile has that plugin
// and the file gives any of it.
func (p *parser) cotEnvironment() {
	if !slices.Contains(p.opts.Plugins, "chainoftrust") {
		return
	}
	l := p.cfg.Location
	env := map[string]any{}
	for k, v := range map[string]string{
		"publicIpAddress":  l.PublicIP,
		"privateIpAddress": l.PrivateIP,
		"instanceId":       l.InstanceID,
		"instanceType":     l.InstanceType,
		"region":           l.Region,
		"availabilityZone": l.AvailabilityZone,
	} {
		if v != "" {
			env[k] = v
		}
	}
	if len(env) > 0 {
		p.set("publicIP", "plugins.chainoftrust.environment", env)
	}
}
