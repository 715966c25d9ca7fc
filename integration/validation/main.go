// ocivalidate: the checks of the OCI runtime-tools libraries Debian ships
// (golang-github-opencontainers-runtime-tools-dev: validate, cgroups) and the runtime-spec JSON
// schemas (golang-github-opencontainers-runtime-spec-dev), applied to what a runtime produces.
// Each check prints one TAP line; integration/validation.sh runs it against husk and runc.
//
//	ocivalidate config BUNDLE      runtime-tools' bundle validator (oci-runtime-tool validate's
//	                               checks, host-specific) and config-schema.json on BUNDLE/config.json
//	ocivalidate state STATUS FILE  state-schema.json on the output of `RUNTIME state`, and its status
//	ocivalidate cgroups BUNDLE PID runtime-tools' cgroup v1 readers: the limits the container's
//	                               cgroup holds against BUNDLE/config.json's linux.resources
//	ocivalidate generate BUNDLE ARGS...  write runtime-tools' default config (the suite's base)
//
// Exit status 0 when every check passed, 1 otherwise, 2 on a usage or setup error.
package main

import (
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strconv"

	"github.com/hashicorp/go-multierror"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/cgroups"
	"github.com/opencontainers/runtime-tools/generate"
	"github.com/opencontainers/runtime-tools/validate"
	"github.com/sirupsen/logrus"
	"github.com/xeipuuv/gojsonschema"
)

// Debian's copy of the runtime-spec schemas (the validator's own CheckJSONSchema fetches them
// from GitHub; this run is offline).
const schemaDir = "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema"

type tap struct {
	n, failed int
}

func (t *tap) check(name string, err error) {
	t.n++
	// the validator's checks return a *multierror.Error even when it holds no error
	// (and lists its errors in map order: sorted here, so a run's report reads the same each time)
	if me, ok := err.(*multierror.Error); ok {
		sort.Slice(me.Errors, func(i, j int) bool { return me.Errors[i].Error() < me.Errors[j].Error() })
		err = me.ErrorOrNil()
	}
	if err == nil {
		fmt.Printf("ok %d - %s\n", t.n, name)
		return
	}
	t.failed++
	fmt.Printf("not ok %d - %s\n", t.n, name)
	fmt.Printf("# %s\n", oneLine(err.Error()))
}

func (t *tap) skip(name, why string) {
	t.n++
	fmt.Printf("ok %d - %s # SKIP %s\n", t.n, name, why)
}

func (t *tap) done() {
	fmt.Printf("1..%d\n", t.n)
	if t.failed > 0 {
		os.Exit(1)
	}
	os.Exit(0)
}

func oneLine(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}

func fatal(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "ocivalidate: "+format+"\n", a...)
	os.Exit(2)
}

func schemaCheck(schema string, doc gojsonschema.JSONLoader) error {
	loader := gojsonschema.NewReferenceLoader("file://" + filepath.Join(schemaDir, schema))
	res, err := gojsonschema.Validate(loader, doc)
	if err != nil {
		return err
	}
	if !res.Valid() {
		msg := ""
		for _, e := range res.Errors() {
			msg += e.String() + "; "
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

func loadSpec(bundle string) *rspec.Spec {
	data, err := ioutil.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		fatal("%v", err)
	}
	var spec rspec.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		fatal("%s/config.json: %v", bundle, err)
	}
	return &spec
}

func configChecks(bundle string) {
	t := &tap{}
	v, err := validate.NewValidatorFromPath(bundle, true, runtime.GOOS)
	if err != nil {
		fatal("%v", err)
	}
	data, err := ioutil.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		fatal("%v", err)
	}
	t.check("config-schema.json", schemaCheck("config-schema.json", gojsonschema.NewBytesLoader(data)))
	t.check("platform", v.CheckPlatform())
	t.check("root", v.CheckRoot())
	t.check("mandatory fields", v.CheckMandatoryFields())
	t.check("ociVersion", v.CheckSemVer())
	t.check("mounts", v.CheckMounts())
	t.check("process", v.CheckProcess())
	t.check("linux", v.CheckLinux())
	t.check("annotations", v.CheckAnnotations())
	t.check("hooks", v.CheckHooks())
	t.done()
}

func stateChecks(status, file string) {
	t := &tap{}
	data, err := ioutil.ReadFile(file)
	if err != nil {
		fatal("%v", err)
	}
	t.check("state-schema.json ("+status+")", schemaCheck("state-schema.json", gojsonschema.NewBytesLoader(data)))
	var st rspec.State
	if err := json.Unmarshal(data, &st); err != nil {
		t.check("state status "+status, err)
		t.done()
	}
	if st.Status != rspec.ContainerState(status) {
		t.check("state status "+status, fmt.Errorf("status %q, want %q", st.Status, status))
	} else {
		t.check("state status "+status, nil)
	}
	t.done()
}

// same compares the fields the config sets (non-nil pointers, non-zero values) with what the
// cgroup holds.
func same(what string, want, got interface{}) error {
	wv, gv := reflect.ValueOf(want), reflect.ValueOf(got)
	if wv.Kind() == reflect.Ptr {
		if wv.IsNil() {
			return nil
		}
		if gv.IsNil() {
			return fmt.Errorf("%s: set to %v, the cgroup has none", what, wv.Elem().Interface())
		}
		wv, gv = wv.Elem(), gv.Elem()
	}
	if wv.Kind() == reflect.Struct {
		for i := 0; i < wv.NumField(); i++ {
			f := wv.Type().Field(i)
			if err := same(what+"."+f.Name, wv.Field(i).Interface(), gv.Field(i).Interface()); err != nil {
				return err
			}
		}
		return nil
	}
	if wv.Kind() == reflect.Slice {
		if wv.Len() == 0 {
			return nil
		}
		if !reflect.DeepEqual(wv.Interface(), gv.Interface()) {
			return fmt.Errorf("%s: set to %+v, the cgroup has %+v", what, wv.Interface(), gv.Interface())
		}
		return nil
	}
	if wv.IsZero() {
		return nil
	}
	if !reflect.DeepEqual(wv.Interface(), gv.Interface()) {
		return fmt.Errorf("%s: set to %v, the cgroup has %v", what, wv.Interface(), gv.Interface())
	}
	return nil
}

// devicesAllowed: each rule the config allows is in the cgroup's devices.list (the list the
// readers return holds the allowed rules; the runtime adds its defaults, so no equality)
func devicesAllowed(want, got []rspec.LinuxDeviceCgroup) error {
	val := func(p *int64) int64 {
		if p == nil {
			return 0 // "*" reads back as 0
		}
		return *p
	}
	accessSet := func(a string) string {
		out := ""
		for _, c := range "rwm" {
			for _, d := range a {
				if c == d {
					out += string(c)
					break
				}
			}
		}
		return out
	}
	for _, w := range want {
		if !w.Allow {
			continue
		}
		found := false
		for _, g := range got {
			if g.Type == w.Type && val(g.Major) == val(w.Major) && val(g.Minor) == val(w.Minor) &&
				accessSet(g.Access) == accessSet(w.Access) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("devices: %s %d:%d %s allowed by the config, not in devices.list", w.Type, val(w.Major), val(w.Minor), w.Access)
		}
	}
	return nil
}

// generateDefault writes BUNDLE/config.json: runtime-tools' default config (generate.New, the
// base of every case of the suite), running ARGS
func generateDefault(bundle string, args []string) {
	g, err := generate.New("linux")
	if err != nil {
		fatal("%v", err)
	}
	g.SetProcessArgs(args)
	if err := g.SaveToFile(filepath.Join(bundle, "config.json"), generate.ExportOptions{}); err != nil {
		fatal("%v", err)
	}
}

func cgroupChecks(bundle, pidArg string) {
	t := &tap{}
	spec := loadSpec(bundle)
	pid, err := strconv.Atoi(pidArg)
	if err != nil {
		fatal("pid %q: %v", pidArg, err)
	}
	if spec.Linux == nil || spec.Linux.Resources == nil || spec.Linux.CgroupsPath == "" {
		fatal("%s/config.json sets no linux.resources or cgroupsPath", bundle)
	}
	cg, err := cgroups.FindCgroup()
	if err != nil {
		// runtime-tools' cgroups package reads cgroup v1 only
		t.skip("cgroups", err.Error())
		t.done()
	}
	r := spec.Linux.Resources
	path := spec.Linux.CgroupsPath
	if r.Memory != nil {
		m, err := cg.GetMemoryData(pid, path)
		if err == nil {
			err = same("memory", r.Memory, m)
		}
		t.check("memory", err)
	}
	if r.CPU != nil {
		c, err := cg.GetCPUData(pid, path)
		if err == nil {
			err = same("cpu", r.CPU, c)
		}
		t.check("cpu", err)
	}
	if r.Pids != nil {
		p, err := cg.GetPidsData(pid, path)
		if err == nil {
			err = same("pids", r.Pids, p)
		}
		t.check("pids", err)
	}
	if len(r.Devices) > 0 {
		d, err := cg.GetDevicesData(pid, path)
		if err == nil {
			err = devicesAllowed(r.Devices, d)
		}
		t.check("devices", err)
	}
	if r.BlockIO != nil {
		b, err := cg.GetBlockIOData(pid, path)
		if err == nil {
			err = same("blockIO", r.BlockIO, b)
		}
		t.check("blockIO", err)
	}
	if r.Network != nil {
		n, err := cg.GetNetworkData(pid, path)
		if err == nil {
			err = same("network", r.Network, n)
		}
		t.check("network", err)
	}
	t.done()
}

func main() {
	logrus.SetOutput(ioutil.Discard)
	a := os.Args[1:]
	switch {
	case len(a) == 2 && a[0] == "config":
		configChecks(a[1])
	case len(a) == 3 && a[0] == "state":
		stateChecks(a[1], a[2])
	case len(a) == 3 && a[0] == "cgroups":
		cgroupChecks(a[1], a[2])
	case len(a) >= 3 && a[0] == "generate":
		generateDefault(a[1], a[2:])
	default:
		fatal("usage: ocivalidate config BUNDLE | state STATUS FILE | cgroups BUNDLE PID | generate BUNDLE ARGS...")
	}
}
