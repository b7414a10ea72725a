// Package config reads a binary's configuration from flags, each of which has
// an environment variable equivalent. A flag given on the command line wins
// over its environment variable, which wins over the default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Set is a flag set whose flags may also be set from the environment.
type Set struct {
	fs  *flag.FlagSet
	env map[string]string // flag name -> environment variable
}

// New returns an empty Set for the named program.
func New(program string) *Set {
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	// Errors are reported by Parse in one line; usage only on -h.
	fs.SetOutput(io.Discard)
	return &Set{fs: fs, env: map[string]string{}}
}

// FlagSet exposes the underlying set for flag types this package lacks.
// Flags added there have no environment equivalent unless passed to Env.
func (s *Set) FlagSet() *flag.FlagSet { return s.fs }

// Env binds an already defined flag to an environment variable.
func (s *Set) Env(flagName, envName string) {
	f := s.fs.Lookup(flagName)
	if f == nil {
		panic("config: Env for undefined flag " + flagName) // programming error
	}
	s.env[flagName] = envName
	f.Usage += " (env " + envName + ")"
}

// String defines a string flag with an environment equivalent.
func (s *Set) String(p *string, name, env, value, usage string) {
	s.fs.StringVar(p, name, value, usage)
	s.Env(name, env)
}

// Duration defines a duration flag with an environment equivalent.
func (s *Set) Duration(p *time.Duration, name, env string, value time.Duration, usage string) {
	s.fs.DurationVar(p, name, value, usage)
	s.Env(name, env)
}

// Int defines an int flag with an environment equivalent.
func (s *Set) Int(p *int, name, env string, value int, usage string) {
	s.fs.IntVar(p, name, value, usage)
	s.Env(name, env)
}

// Float defines a float64 flag with an environment equivalent. NaN and the
// infinities are refused when parsed: no range check would catch NaN,
// which compares false with everything.
func (s *Set) Float(p *float64, name, env string, value float64, usage string) {
	*p = value
	s.fs.Var((*finiteFloat)(p), name, usage)
	s.Env(name, env)
}

type finiteFloat float64

func (f *finiteFloat) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 64) }
func (f *finiteFloat) Set(v string) error {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return errors.New("not a number")
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return errors.New("not a finite number")
	}
	*f = finiteFloat(x)
	return nil
}

// Bool defines a bool flag with an environment equivalent.
func (s *Set) Bool(p *bool, name, env string, value bool, usage string) {
	s.fs.BoolVar(p, name, value, usage)
	s.Env(name, env)
}

// Var defines a flag of any flag.Value with an environment equivalent.
func (s *Set) Var(v flag.Value, name, env, usage string) {
	s.fs.Var(v, name, usage)
	s.Env(name, env)
}

// ErrHelp is returned by Parse when -h or -help was given.
var ErrHelp = flag.ErrHelp

// Parse parses args, then fills every flag not given on the command line from
// its environment variable, looked up with getenv. Errors name the flag (and
// the variable) and what is wrong, in one line.
func (s *Set) Parse(args []string, getenv func(string) string) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: this program takes only flags", s.fs.Arg(0))
	}
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	s.fs.VisitAll(func(f *flag.Flag) {
		env, ok := s.env[f.Name]
		if !ok || given[f.Name] {
			return
		}
		v := getenv(env)
		if v == "" {
			return
		}
		if err := s.fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for env %s (flag -%s): %v", v, env, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// Usage writes the usage text to w.
func (s *Set) Usage(w io.Writer) {
	fmt.Fprintf(w, "Usage of %s:\n", s.fs.Name())
	s.fs.SetOutput(w)
	s.fs.PrintDefaults()
	s.fs.SetOutput(io.Discard)
}

// ParseOrExit is Parse for main, followed by the checks in validate (range
// checks flag parsing cannot do): on -h it prints usage and exits 0; on any
// error it prints one line naming every problem and exits 2.
func (s *Set) ParseOrExit(args []string, validate ...func() error) {
	err := s.Parse(args, os.Getenv)
	if errors.Is(err, ErrHelp) {
		s.Usage(os.Stdout)
		os.Exit(0)
	}
	if err == nil {
		errs := make([]error, 0, len(validate))
		for _, v := range validate {
			errs = append(errs, v())
		}
		err = errors.Join(errs...)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s\n", s.fs.Name(), strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(2)
	}
}

// Check returns an error naming the flag when ok is false; for validations
// that flag.Value cannot express, such as ranges.
func Check(ok bool, flagName, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf("invalid value for flag -%s: %s", flagName, fmt.Sprintf(format, args...))
}

// CheckListenAddr checks a listen address flag: host:port with a numeric
// port 0..65535 (0: any free port), the host empty (every interface), a
// name or an IP. Empty is allowed when optional (the listener is off).
func CheckListenAddr(flagName, addr string, optional bool) error {
	if addr == "" {
		return Check(optional, flagName, "must not be empty; want host:port, e.g. :8080")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Check(false, flagName, "%q is not host:port (e.g. :8080, 127.0.0.1:8080)", addr)
	}
	n, err := strconv.Atoi(port)
	return Check(err == nil && n >= 0 && n <= 65535, flagName, "%q: the port must be a number 0..65535", addr)
}
