package formatter

import (
	"fmt"
	"strconv"
	"time"
)

// defaultTimeFormat is what %START_TIME% without an argument renders:
// e.g. 2021-10-22T18:05:12.123Z (UTC, milliseconds).
const defaultTimeFormat = "%Y-%m-%dT%H:%M:%E3SZ"

// timeFormat is a strftime-style format compiled into verbs. Envoy formats
// start times in UTC; so does Legate.
type timeFormat struct {
	toks []timeTok
}

type timeTok struct {
	verb byte // 0 = literal
	// digits is the fraction width of %Nf and %ENS (0 for %E*S: trimmed).
	digits int
	lit    string
}

var shortDays = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
var longDays = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
var shortMonths = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
var longMonths = [...]string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}

func compileTimeFormat(spec string) (*timeFormat, error) {
	tf := &timeFormat{}
	lit := []byte{}
	flush := func() {
		if len(lit) > 0 {
			tf.toks = append(tf.toks, timeTok{lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(spec); i++ {
		c := spec[i]
		if c != '%' {
			lit = append(lit, c)
			continue
		}
		i++
		if i >= len(spec) {
			return nil, fmt.Errorf("trailing '%%' in time format")
		}
		v := spec[i]
		switch {
		case v == '%':
			lit = append(lit, '%')
		case v == 'n':
			lit = append(lit, '\n')
		case v == 't':
			lit = append(lit, '\t')
		case v >= '1' && v <= '9' && i+1 < len(spec) && spec[i+1] == 'f':
			flush()
			tf.toks = append(tf.toks, timeTok{verb: 'f', digits: int(v - '0')})
			i++
		case v == 'E':
			// %E<n>S and %E*S: seconds with n (or as many as needed)
			// fraction digits.
			if i+2 < len(spec) && spec[i+2] == 'S' && (spec[i+1] == '*' || spec[i+1] >= '0' && spec[i+1] <= '9') {
				flush()
				d := 0
				if spec[i+1] != '*' {
					d = int(spec[i+1] - '0')
				}
				tf.toks = append(tf.toks, timeTok{verb: 'E', digits: d})
				i += 2
			} else if i+1 < len(spec) && spec[i+1] == 'z' {
				flush()
				tf.toks = append(tf.toks, timeTok{verb: 'Q'}) // +00:00
				i++
			} else {
				return nil, fmt.Errorf("unsupported time specifier %%E%s", spec[i+1:min(i+3, len(spec))])
			}
		case v == 'f':
			flush()
			tf.toks = append(tf.toks, timeTok{verb: 'f', digits: 9})
		case isTimeVerb(v):
			flush()
			tf.toks = append(tf.toks, timeTok{verb: v})
		default:
			return nil, fmt.Errorf("unsupported time specifier %%%c", v)
		}
	}
	flush()
	return tf, nil
}

func isTimeVerb(v byte) bool {
	switch v {
	case 'Y', 'y', 'C', 'm', 'd', 'e', 'H', 'I', 'M', 'S', 'j', 'a', 'A', 'b', 'h', 'B', 'p',
		'z', 'Z', 'T', 'D', 'F', 'R', 's', 'u', 'w':
		return true
	}
	return false
}

func append2(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10%10), byte('0'+n%10))
}

func appendPadded(dst []byte, n, width int) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

func appendFraction(dst []byte, nsec, digits int) []byte {
	var b [9]byte
	for i := 8; i >= 0; i-- {
		b[i] = byte('0' + nsec%10)
		nsec /= 10
	}
	return append(dst, b[:digits]...)
}

func (tf *timeFormat) append(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	for _, tok := range tf.toks {
		switch tok.verb {
		case 0:
			dst = append(dst, tok.lit...)
		case 'Y':
			dst = appendPadded(dst, year, 4)
		case 'y':
			dst = append2(dst, year%100)
		case 'C':
			dst = append2(dst, year/100)
		case 'm':
			dst = append2(dst, int(month))
		case 'd':
			dst = append2(dst, day)
		case 'e':
			if day < 10 {
				dst = append(dst, ' ', byte('0'+day))
			} else {
				dst = append2(dst, day)
			}
		case 'H':
			dst = append2(dst, hour)
		case 'I':
			h := hour % 12
			if h == 0 {
				h = 12
			}
			dst = append2(dst, h)
		case 'M':
			dst = append2(dst, minute)
		case 'S':
			dst = append2(dst, sec)
		case 'j':
			dst = appendPadded(dst, t.YearDay(), 3)
		case 'a':
			dst = append(dst, shortDays[t.Weekday()]...)
		case 'A':
			dst = append(dst, longDays[t.Weekday()]...)
		case 'b', 'h':
			dst = append(dst, shortMonths[month-1]...)
		case 'B':
			dst = append(dst, longMonths[month-1]...)
		case 'p':
			if hour < 12 {
				dst = append(dst, "AM"...)
			} else {
				dst = append(dst, "PM"...)
			}
		case 'u':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			dst = append(dst, byte('0'+wd))
		case 'w':
			dst = append(dst, byte('0'+int(t.Weekday())))
		case 'z':
			dst = append(dst, "+0000"...)
		case 'Q':
			dst = append(dst, "+00:00"...)
		case 'Z':
			dst = append(dst, "UTC"...)
		case 'T':
			dst = append2(dst, hour)
			dst = append(dst, ':')
			dst = append2(dst, minute)
			dst = append(dst, ':')
			dst = append2(dst, sec)
		case 'R':
			dst = append2(dst, hour)
			dst = append(dst, ':')
			dst = append2(dst, minute)
		case 'D':
			dst = append2(dst, int(month))
			dst = append(dst, '/')
			dst = append2(dst, day)
			dst = append(dst, '/')
			dst = append2(dst, year%100)
		case 'F':
			dst = appendPadded(dst, year, 4)
			dst = append(dst, '-')
			dst = append2(dst, int(month))
			dst = append(dst, '-')
			dst = append2(dst, day)
		case 's':
			dst = strconv.AppendInt(dst, t.Unix(), 10)
		case 'f':
			dst = appendFraction(dst, t.Nanosecond(), tok.digits)
		case 'E':
			dst = append2(dst, sec)
			if tok.digits > 0 {
				dst = append(dst, '.')
				dst = appendFraction(dst, t.Nanosecond(), tok.digits)
			} else if ns := t.Nanosecond(); ns != 0 {
				// %E*S: as many digits as needed.
				var b [9]byte
				frac := appendFraction(b[:0], ns, 9)
				n := len(frac)
				for n > 0 && frac[n-1] == '0' {
					n--
				}
				dst = append(dst, '.')
				dst = append(dst, frac[:n]...)
			}
		}
	}
	return dst
}
