package stats

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// NewStoreFromConfig builds the server's store and tag extractor from the
// bootstrap's stats_config (nil means Envoy's defaults). The store applies
// stats_matcher when stats are created and also reports Prometheus' process
// metrics on /stats/prometheus (see EnableProcessMetrics).
func NewStoreFromConfig(pb *metricsv3.StatsConfig) (*Store, *TagExtractor, error) {
	var errs []error
	tx, err := NewTagExtractorFromConfig(pb)
	if err != nil {
		errs = append(errs, err)
	}
	m, err := compileStatsMatcher(pb.GetStatsMatcher())
	if err != nil {
		errs = append(errs, fmt.Errorf("stats_config.stats_matcher: %w", err))
	}
	buckets, err := compileBucketSettings(pb.GetHistogramBucketSettings())
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	s := NewStore()
	s.accept = m
	s.buckets = buckets
	s.EnableProcessMetrics()
	return s, tx, nil
}

// NewTagExtractorFromConfig builds the tag extractor of stats_config:
// Envoy's default extractors (all of them unless use_all_default_tags is
// false, in which case only those named by a stats_tags entry without a
// value), then the custom regex and fixed-value specifiers in order.
func NewTagExtractorFromConfig(pb *metricsv3.StatsConfig) (*TagExtractor, error) {
	useDefaults := pb.GetUseAllDefaultTags() == nil || pb.GetUseAllDefaultTags().GetValue()
	var rules []tagRule
	if useDefaults {
		rules = append(rules, defaultTagRules...)
	}
	var fixed []Tag
	seen := map[string]int{}
	for i, ts := range pb.GetStatsTags() {
		path := fmt.Sprintf("stats_config.stats_tags[%d]", i)
		name := ts.GetTagName()
		if name == "" {
			return nil, fmt.Errorf("%s.tag_name: must not be empty", path)
		}
		if j, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s: tag name %q specified twice (also stats_tags[%d])", path, name, j)
		}
		seen[name] = i
		switch v := ts.GetTagValue().(type) {
		case *metricsv3.TagSpecifier_FixedValue:
			fixed = append(fixed, Tag{Name: name, Value: v.FixedValue})
		case *metricsv3.TagSpecifier_Regex:
			if v.Regex == "" {
				return nil, fmt.Errorf("%s.regex: must not be empty", path)
			}
			re, err := regexp.Compile(v.Regex)
			if err != nil {
				return nil, fmt.Errorf("%s.regex: %w (Go RE2 syntax: look-arounds such as (?=\\.) are not supported)", path, err)
			}
			if re.NumSubexp() < 1 {
				return nil, fmt.Errorf("%s.regex: %q needs a capture group", path, v.Regex)
			}
			// With the defaults on, a default extractor of the same name
			// takes precedence, as in Envoy (no allow_default_tag_overrides).
			if useDefaults && isDefaultTag(name) {
				continue
			}
			rules = append(rules, tagRule{name: name, re: re})
		default:
			// A bare tag_name turns on the default extractor of that name.
			if !isDefaultTag(name) {
				return nil, fmt.Errorf("%s: %q is not a default tag name; give a regex or a fixed_value", path, name)
			}
			if !useDefaults {
				for _, r := range defaultTagRules {
					if r.name == name {
						rules = append(rules, r)
					}
				}
			}
		}
	}
	x := NewTagExtractor()
	x.rules, x.fixed = rules, fixed
	return x, nil
}

func isDefaultTag(name string) bool {
	for _, r := range defaultTagRules {
		if r.name == name {
			return true
		}
	}
	return false
}

// statsMatcher decides, when a stat is created, whether it is kept. Envoy
// matches the full stat name, before tag extraction.
type statsMatcher struct {
	rejectAll bool
	include   bool // true: keep only matches; false: drop matches
	patterns  []nameMatcher
}

func (m *statsMatcher) accepts(name string) bool {
	if m == nil {
		return true
	}
	if m.rejectAll {
		return false
	}
	for i := range m.patterns {
		if m.patterns[i].match(name) {
			return m.include
		}
	}
	return !m.include
}

func compileStatsMatcher(pb *metricsv3.StatsMatcher) (*statsMatcher, error) {
	if pb == nil {
		return nil, nil
	}
	switch v := pb.GetStatsMatcher().(type) {
	case *metricsv3.StatsMatcher_RejectAll:
		if !v.RejectAll {
			return nil, nil
		}
		return &statsMatcher{rejectAll: true}, nil
	case *metricsv3.StatsMatcher_InclusionList:
		ps, err := compileList(v.InclusionList, "inclusion_list")
		return &statsMatcher{include: true, patterns: ps}, err
	case *metricsv3.StatsMatcher_ExclusionList:
		ps, err := compileList(v.ExclusionList, "exclusion_list")
		return &statsMatcher{patterns: ps}, err
	}
	return nil, errors.New("one of reject_all, inclusion_list or exclusion_list is required")
}

func compileList(l *matcherv3.ListStringMatcher, path string) ([]nameMatcher, error) {
	var out []nameMatcher
	for i, p := range l.GetPatterns() {
		m, err := compileNameMatcher(p)
		if err != nil {
			return nil, fmt.Errorf("%s.patterns[%d]: %w", path, i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// nameMatcher is an envoy.type.matcher.v3.StringMatcher applied to stat
// names; it runs only when a stat is created.
type nameMatcher struct {
	kind       byte // 'e'xact, 'p'refix, 's'uffix, 'c'ontains, 'r'egex
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

func compileNameMatcher(pb *matcherv3.StringMatcher) (nameMatcher, error) {
	m := nameMatcher{ignoreCase: pb.GetIgnoreCase()}
	switch p := pb.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		m.kind, m.value = 'e', p.Exact
	case *matcherv3.StringMatcher_Prefix:
		m.kind, m.value = 'p', p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		m.kind, m.value = 's', p.Suffix
	case *matcherv3.StringMatcher_Contains:
		m.kind, m.value = 'c', p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		// safe_regex must match the whole name.
		expr := "^(?:" + p.SafeRegex.GetRegex() + ")$"
		if m.ignoreCase {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return m, fmt.Errorf("safe_regex: %w", err)
		}
		m.kind, m.re = 'r', re
		return m, nil
	default:
		return m, errors.New("a match pattern (exact, prefix, suffix, contains or safe_regex) is required")
	}
	if m.ignoreCase {
		m.value = strings.ToLower(m.value)
	}
	return m, nil
}

func (m *nameMatcher) match(s string) bool {
	if m.kind == 'r' {
		return m.re.MatchString(s)
	}
	if m.ignoreCase {
		s = strings.ToLower(s)
	}
	switch m.kind {
	case 'e':
		return s == m.value
	case 'p':
		return strings.HasPrefix(s, m.value)
	case 's':
		return strings.HasSuffix(s, m.value)
	case 'c':
		return strings.Contains(s, m.value)
	}
	return false
}

// bucketRule is one stats_config.histogram_bucket_settings entry.
type bucketRule struct {
	match  nameMatcher
	bounds []float64
}

// compileBucketSettings compiles histogram_bucket_settings: the first rule
// whose matcher takes a histogram's full name gives its bucket bounds,
// sorted and without repeats; the rest keep DefaultBuckets.
func compileBucketSettings(pbs []*metricsv3.HistogramBucketSettings) ([]bucketRule, error) {
	var out []bucketRule
	for i, pb := range pbs {
		path := fmt.Sprintf("stats_config.histogram_bucket_settings[%d]", i)
		m, err := compileNameMatcher(pb.GetMatch())
		if err != nil {
			return nil, fmt.Errorf("%s.match: %w", path, err)
		}
		if len(pb.GetBuckets()) == 0 {
			return nil, fmt.Errorf("%s.buckets: must not be empty", path)
		}
		bounds := append([]float64(nil), pb.GetBuckets()...)
		sort.Float64s(bounds)
		uniq := bounds[:1]
		for _, b := range bounds[1:] {
			if b != uniq[len(uniq)-1] {
				uniq = append(uniq, b)
			}
		}
		if uniq[0] <= 0 {
			return nil, fmt.Errorf("%s.buckets: bounds must be greater than 0, got %v", path, uniq[0])
		}
		out = append(out, bucketRule{match: m, bounds: uniq})
	}
	return out, nil
}

// bucketsFor returns the bucket bounds of the histogram called name.
func bucketsFor(rules []bucketRule, name string) []float64 {
	for i := range rules {
		if rules[i].match.match(name) {
			return rules[i].bounds
		}
	}
	return DefaultBuckets
}
