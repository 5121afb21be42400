/*
 * operators.otlp._json: the JSON grammar, checked on every byte as json.loads checks it (minus
 * NaN and Infinity, which bail), and the typed fields of OTLP/JSON: int64 as a number or a
 * decimal string, enums as integers or names, hex ids.
 */
#include "_json.h"

int string(JDec *j, Str *out) {
    TRY(expect(j, '"'));
    const uint8_t *p = j->p, *e = j->end;
    out->s = p;
    out->esc = 0;
    for (;;) {
        if (p >= e) {
            return bail(j);
        }
        uint8_t c = *p;
        if (c == '"') {
            break;
        }
        if (c < 0x20) {
            return bail(j); /* a raw control character: not JSON */
        }
        if (c != '\\') {
            p++;
            continue;
        }
        out->esc = 1;
        if (e - p < 2) {
            return bail(j);
        }
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            break;
        case 'u':
            if (e - p < 6 || hexval(p[2]) < 0 || hexval(p[3]) < 0 || hexval(p[4]) < 0 ||
                hexval(p[5]) < 0) {
                return bail(j);
            }
            p += 6;
            break;
        default:
            return bail(j);
        }
    }
    out->n = (size_t)(p - out->s);
    j->p = p + 1;
    return 0;
}


/* A number at the read position; *integer when it has no fraction and no exponent. */
int number(JDec *j, Str *out, int *integer) {
    const uint8_t *p = j->p, *e = j->end;
    out->s = p;
    *integer = 1;
    if (p < e && *p == '-') {
        p++;
    }
    if (p >= e || !is_digit(*p)) {
        return bail(j);
    }
    if (*p++ != '0') {
        while (p < e && is_digit(*p)) {
            p++;
        }
    }
    if (p < e && *p == '.') {
        *integer = 0;
        if (++p >= e || !is_digit(*p)) {
            return bail(j);
        }
        while (p < e && is_digit(*p)) {
            p++;
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        if (++p < e && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= e || !is_digit(*p)) {
            return bail(j);
        }
        while (p < e && is_digit(*p)) {
            p++;
        }
    }
    out->n = (size_t)(p - out->s);
    j->p = p;
    return 0;
}

static int literal(JDec *j, const char *word, size_t n) {
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
        return bail(j);
    }
    j->p += n;
    return 0;
}

/* After '{' (first set) or a member: 1 and the next key with the position at its value, 0 past
 * the closing '}', -1 on a bail. */
int next_key(JDec *j, int *first, Str *key) {
    uint8_t c;
    TRY(peek(j, &c));
    if (*first) {
        *first = 0;
        if (c == '}') {
            j->p++;
            return 0;
        }
    } else {
        j->p++;
        if (c == '}') {
            return 0;
        }
        if (c != ',') {
            return bail(j);
        }
    }
    TRY(string(j, key));
    TRY(expect(j, ':'));
    ws(j);
    return 1;
}

/* After '[' (first set) or an element: 1 with the position at the next element, 0 past ']'. */
int next_elem(JDec *j, int *first) {
    uint8_t c;
    TRY(peek(j, &c));
    if (*first) {
        *first = 0;
        if (c == ']') {
            j->p++;
            return 0;
        }
        return 1;
    }
    j->p++;
    if (c == ']') {
        return 0;
    }
    if (c != ',') {
        return bail(j);
    }
    ws(j);
    return 1;
}

/* Any value, checked against the JSON grammar and skipped. */
int skip_json(JDec *j, int depth) {
    uint8_t c;
    int first = 1, r, integer;
    Str s;
    TRY(peek(j, &c));
    if ((c == '{' || c == '[') && depth > MAX_NEST) {
        return bail(j); /* the Python decoder says how deep is too deep */
    }
    switch (c) {
    case '{':
        j->p++;
        while ((r = next_key(j, &first, &s)) > 0) {
            TRY(skip_json(j, depth + 1));
        }
        return r;
    case '[':
        j->p++;
        while ((r = next_elem(j, &first)) > 0) {
            TRY(skip_json(j, depth + 1));
        }
        return r;
    case '"':
        return string(j, &s);
    case 't':
        return literal(j, "true", 4);
    case 'f':
        return literal(j, "false", 5);
    case 'n':
        return literal(j, "null", 4);
    default:
        return number(j, &s, &integer);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* typed fields                                                                               */

/* Decimal digits (with an optional '-' when `sign`) as an int64 in [lo, hi]. */
static int decimal(JDec *j, const uint8_t *s, size_t n, int sign, int64_t lo, int64_t hi,
                   int64_t *out) {
    int neg = sign && n > 0 && s[0] == '-';
    size_t i = (size_t)neg;
    if (i >= n || n - i > 19) {
        return bail(j);
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i])) {
            return bail(j);
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX) {
        return bail(j);
    }
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    if (x < lo || x > hi) {
        return bail(j);
    }
    *out = x;
    return 0;
}

/* An integer as a JSON integer or a decimal string (OTLP/JSON writes int64 both ways). */
int int_field(JDec *j, int sign, int64_t lo, int64_t hi, int64_t *out) {
    uint8_t c;
    Str s;
    int integer;
    TRY(peek(j, &c));
    if (c == '"') {
        TRY(string(j, &s));
    } else {
        TRY(number(j, &s, &integer));
        if (!integer) {
            return bail(j);
        }
    }
    return decimal(j, s.s, s.n, sign, lo, hi, out);
}

const char *const SPAN_KINDS[6] = {
    "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER",
};
const char *const STATUS_CODES[3] = {
    "STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR",
};

/* An enum: a JSON integer that fits int8, or one of its names. */
int enum_field(JDec *j, const char *const *names, int count, int64_t *out) {
    uint8_t c;
    Str s;
    int integer;
    TRY(peek(j, &c));
    if (c != '"') {
        TRY(number(j, &s, &integer));
        if (!integer) {
            return bail(j);
        }
        return decimal(j, s.s, s.n, 1, -128, 127, out);
    }
    TRY(string(j, &s));
    for (int i = 0; i < count; i++) {
        if (!s.esc && s.n == strlen(names[i]) && memcmp(s.s, names[i], s.n) == 0) {
            *out = i;
            return 0;
        }
    }
    return bail(j);
}

/* A trace or span id: exactly 2 * size hex digits, either case. */
int hex_id(JDec *j, uint8_t *out, size_t size) {
    Str s;
    TRY(string(j, &s));
    if (s.esc || s.n != 2 * size) {
        return bail(j);
    }
    for (size_t i = 0; i < size; i++) {
        int hi = hexval(s.s[2 * i]), lo = hexval(s.s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return bail(j);
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
