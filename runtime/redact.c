/*
 * redact.c - keeping the password of a connection target out of messages
 * (see redact.h).
 *
 * libpq's own messages are the danger: for a target it cannot parse it
 * quotes the token it stopped at ("invalid percent-encoded token:
 * "S3cret%zz"") or the whole URI, and a password cut short by a raw "/",
 * "@" or space ends up as a host, a port or a database name that later
 * messages quote.  So the secrets are found in the text of the target
 * with simple rules that over-reach rather than miss, and every message
 * is filtered through them.
 *
 * Caveat: the rules know libpq's keywords (to tell where a password value
 * ends); a keyword added by a later libpq only makes the hidden part
 * longer.
 */
#include "redact.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define MAX_SPANS 16
#define TEXT_MAX 4096

/* libpq's connection keywords (PostgreSQL 17 and before). */
static const char *const keywords[] = {
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile",
    "channel_binding", "connect_timeout", "client_encoding", "options",
    "application_name", "fallback_application_name", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout", "replication", "gssencmode", "sslmode",
    "requiressl", "sslcompression", "sslcert", "sslkey", "sslpassword",
    "sslcertmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni",
    "requirepeer", "require_auth", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "krbsrvname", "gsslib", "gssdelegation",
    "sslnegotiation", "service", "target_session_attrs",
    "load_balance_hosts", NULL,
};

typedef struct span {
    size_t from, to; /* [from, to) of the target */
} span;

/* Whether t[p..) starts with "keyword=" (spaces before "=" allowed
 * unless uri). */
static int keyword_at(const char *t, size_t p, size_t n, int uri)
{
    size_t q = p;
    while (q < n && (isalnum((unsigned char)t[q]) || t[q] == '_'))
        q++;
    if (q == p)
        return 0;
    size_t len = q - p;
    if (!uri)
        while (q < n && isspace((unsigned char)t[q]))
            q++;
    if (q >= n || t[q] != '=')
        return 0;
    for (int i = 0; keywords[i]; i++)
        if (strlen(keywords[i]) == len && memcmp(keywords[i], t + p, len) == 0)
            return 1;
    return 0;
}

/* End of a conninfo value that may run on past spaces: the first run of
 * spaces followed by "keyword=", or the end. */
static size_t conninfo_end(const char *t, size_t n, size_t from)
{
    for (size_t i = from; i < n; i++) {
        if (!isspace((unsigned char)t[i]))
            continue;
        size_t j = i;
        while (j < n && isspace((unsigned char)t[j]))
            j++;
        if (j == n || keyword_at(t, j, n, 0))
            return i;
        i = j - 1;
    }
    return n;
}

/* End of a URI query value that may hold raw "&": the first
 * "&keyword=", or the end. */
static size_t uri_value_end(const char *t, size_t n, size_t from)
{
    for (size_t i = from; i < n; i++)
        if (t[i] == '&' && keyword_at(t, i + 1, n, 1))
            return i;
    return n;
}

static int add_span(span *s, int *ns, size_t from, size_t to)
{
    if (to <= from)
        return 0;
    if (*ns >= MAX_SPANS)
        return -1;
    s[*ns].from = from;
    s[*ns].to = to;
    (*ns)++;
    return 0;
}

/* password= and sslpassword= values, in a conninfo string or a URI query. */
static int find_passwords(const char *t, size_t n, span *s, int *ns)
{
    for (size_t i = 0; i + 8 <= n; i++) {
        if (strncasecmp(t + i, "password", 8) != 0)
            continue;
        size_t j = i + 8;
        while (j < n && isspace((unsigned char)t[j]))
            j++;
        if (j >= n || t[j] != '=')
            continue;
        size_t k = i >= 3 && strncasecmp(t + i - 3, "ssl", 3) == 0 ? i - 3
                                                                    : i;
        int uri = k > 0 && (t[k - 1] == '?' || t[k - 1] == '&');
        size_t v = j + 1, end;
        if (uri) {
            end = uri_value_end(t, n, v);
        } else {
            while (v < n && isspace((unsigned char)t[v]))
                v++;
            if (v < n && t[v] == '\'') {
                size_t q = v + 1;
                while (q < n && t[q] != '\'') {
                    if (t[q] == '\\' && q + 1 < n)
                        q++;
                    q++;
                }
                if (q < n)
                    q++; /* the closing quote */
                end = q < n && !isspace((unsigned char)t[q])
                          ? conninfo_end(t, n, q)
                          : q;
            } else {
                end = conninfo_end(t, n, v);
            }
        }
        if (add_span(s, ns, v, end) < 0)
            return -1;
        i = end > i ? end - 1 : i;
    }
    return 0;
}

/* The password of "scheme://user:password@host" anywhere in t: from the
 * first ":" after "://" to the last "@" (a raw "/" or "@" inside the
 * password is covered, at the price of hiding more when a later "@"
 * belongs to the query).  Without "://" and "=", t is a database name that
 * may still be written "user:password@host/db". */
static int find_userinfo(const char *t, size_t n, span *s, int *ns)
{
    int uri = 0;
    for (const char *p = t; (p = strstr(p, "://")); p += 3) {
        uri = 1;
        size_t j = (size_t)(p - t) + 3;
        const char *at = memchr(t + j, '@', n - j), *last = NULL;
        while (at) {
            last = at;
            at = memchr(at + 1, '@', n - (size_t)(at + 1 - t));
        }
        if (!last)
            continue;
        const char *colon = memchr(t + j, ':', (size_t)(last - (t + j)));
        if (colon && add_span(s, ns, (size_t)(colon + 1 - t),
                              (size_t)(last - t)) < 0)
            return -1;
    }
    if (!uri && !memchr(t, '=', n)) {
        const char *last = strrchr(t, '@');
        const char *colon = last ? memchr(t, ':', (size_t)(last - t)) : NULL;
        if (colon && add_span(s, ns, (size_t)(colon + 1 - t),
                              (size_t)(last - t)) < 0)
            return -1;
    }
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Append a form made from src[0..len) by `how` (0 as is, 1 percent-
 * decoded, 2 unquoted); too little room sets r->all. */
static void add_form(redact *r, const char *src, size_t len, int how)
{
    if (r->all)
        return;
    if (r->n >= REDACT_MAX_FORMS || REDACT_STORE - r->used < len + 1) {
        r->all = 1;
        return;
    }
    char *dst = r->store + r->used;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (how == 1 && c == '%' && i + 2 < len &&
            hexval((unsigned char)src[i + 1]) >= 0 &&
            hexval((unsigned char)src[i + 2]) >= 0) {
            c = (char)(hexval((unsigned char)src[i + 1]) * 16 +
                       hexval((unsigned char)src[i + 2]));
            i += 2;
            if (c == '\0')
                continue;
        } else if (how == 2 && c == '\'') {
            continue;
        } else if (how == 2 && c == '\\' && i + 1 < len) {
            c = src[++i];
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    if (o == 0)
        return;
    /* the same text twice is of no use */
    for (int k = 0; k < r->n; k++)
        if (strcmp(r->store + r->off[k], dst) == 0)
            return;
    r->off[r->n++] = r->used;
    r->used += o + 1;
}

void redact_add(redact *r, const char *secret)
{
    if (secret && *secret)
        add_form(r, secret, strlen(secret), 0);
}

void redact_init(redact *r, const char *target)
{
    r->all = 0;
    r->n = 0;
    r->used = 0;
    r->shown[0] = '\0';
    if (!target)
        target = "";
    size_t n = strlen(target);
    span s[MAX_SPANS];
    int ns = 0;
    if (n > REDACT_TARGET_MAX || find_userinfo(target, n, s, &ns) < 0 ||
        find_passwords(target, n, s, &ns) < 0) {
        r->all = 1;
        strcpy(r->shown, "(hidden)");
        return;
    }
    for (int i = 0; i < ns; i++) {
        const char *p = target + s[i].from;
        size_t len = s[i].to - s[i].from;
        add_form(r, p, len, 0);
        if (memchr(p, '%', len))
            add_form(r, p, len, 1);
        if (*p == '\'')
            add_form(r, p, len, 2);
    }
    /* the shown target: each byte inside a span is hidden, each run of
     * hidden bytes becomes one "***" */
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int hidden = 0;
        for (int k = 0; k < ns; k++)
            if (i >= s[k].from && i < s[k].to)
                hidden = 1;
        if (!hidden) {
            if (o + 1 > REDACT_TARGET_MAX)
                break;
            r->shown[o++] = target[i++];
            continue;
        }
        if (o + 3 > REDACT_TARGET_MAX)
            break;
        memcpy(r->shown + o, REDACT_MARK, 3);
        o += 3;
        while (i < n) {
            int still = 0;
            for (int k = 0; k < ns; k++)
                if (i >= s[k].from && i < s[k].to)
                    still = 1;
            if (!still)
                break;
            i++;
        }
    }
    r->shown[o] = '\0';
    if (r->all)
        strcpy(r->shown, "(hidden)");
}

/* redact_overlaps on value[0..lv). */
static int overlaps_n(const redact *r, const char *value, size_t lv)
{
    if (lv == 0)
        return 0;
    if (r->all)
        return 1;
    for (int k = 0; k < r->n; k++) {
        const char *f = r->store + r->off[k];
        size_t lf = strlen(f);
        for (size_t i = 0; lf <= lv && i + lf <= lv; i++)
            if (memcmp(value + i, f, lf) == 0)
                return 1; /* value holds the secret */
        if (lv >= 2)
            for (size_t i = 0; lv <= lf && i + lv <= lf; i++)
                if (memcmp(f + i, value, lv) == 0)
                    return 1; /* value is a piece of it */
        size_t m = lv < lf ? lv : lf;
        for (size_t o = 3; o < m; o++)
            if (memcmp(f + lf - o, value, o) == 0 ||
                memcmp(value + lv - o, f, o) == 0)
                return 1; /* they overlap at an end */
    }
    return 0;
}

int redact_overlaps(const redact *r, const char *value)
{
    return value ? overlaps_n(r, value, strlen(value)) : 0;
}

/* Append s[0..n) to out, cut short at outlen - 1. */
static void put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
    if (*o + 1 >= outlen)
        return;
    if (n > outlen - 1 - *o)
        n = outlen - 1 - *o;
    memcpy(out + *o, s, n);
    *o += n;
}

size_t redact_text(const redact *r, const char *text, char *out,
                   size_t outlen)
{
    if (outlen == 0)
        return 0;
    if (!text)
        text = "";
    /* first every whole secret, wherever it is */
    char tmp[TEXT_MAX];
    size_t t = 0;
    for (size_t i = 0; text[i];) {
        size_t hit = 0;
        for (int k = 0; k < r->n && !r->all; k++) {
            const char *f = r->store + r->off[k];
            size_t lf = strlen(f);
            if (lf >= 3 && strncmp(text + i, f, lf) == 0) {
                hit = lf;
                break;
            }
        }
        if (hit) {
            put(tmp, sizeof tmp, &t, REDACT_MARK, 3);
            i += hit;
        } else {
            put(tmp, sizeof tmp, &t, text + i, 1);
            i++;
        }
    }
    tmp[t] = '\0';
    /* then each quoted token that shares text with a secret */
    size_t o = 0;
    for (size_t i = 0; i < t;) {
        const char *close = tmp[i] == '"' ? strchr(tmp + i + 1, '"') : NULL;
        if (!close) {
            put(out, outlen, &o, tmp + i, 1);
            i++;
            continue;
        }
        size_t k = (size_t)(close - tmp);
        const char *x = tmp + i + 1;
        size_t lx = k - i - 1;
        if (lx > 0 && !(lx == 3 && memcmp(x, REDACT_MARK, 3) == 0) &&
            overlaps_n(r, x, lx))
            put(out, outlen, &o, "\"" REDACT_MARK "\"", 5);
        else
            put(out, outlen, &o, tmp + i, k + 1 - i);
        i = k + 1;
    }
    out[o] = '\0';
    return o;
}
