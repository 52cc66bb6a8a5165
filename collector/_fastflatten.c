/*
 * OTLP ExportTraceServiceRequest bytes -> column buffers, without protobuf objects.
 *
 * Why: in Python, every KeyValue of every span becomes two or three protobuf wrapper
 * objects, and that is most of the cost of ingest (about 23 us a span on the
 * benchmark machine). Reading the wire format directly into Arrow-shaped buffers
 * (int32 offsets + bytes for strings, fixed-width arrays for numbers) costs a
 * fraction of that. collector/fast_flatten.py wraps the buffers into the same
 * Arrow table collector/flatten.py builds.
 *
 * This is only a fast path. Whenever a request needs anything beyond the common
 * case -- a span with invalid ids (partial success), duplicate attribute keys,
 * entity refs, a repeated singular message, invalid UTF-8, malformed wire data --
 * flatten() returns None and the caller uses the Python path, which gives the
 * exact answer or the exact error. Attribute values other than strings, integers
 * and booleans are stringified by a Python callback (collector/attributes.py),
 * so their encodings have one implementation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

static int buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(buf_t *b, const void *src, size_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static int put_i32(buf_t *b, int32_t v) { return buf_put(b, &v, 4); }
static int put_u32(buf_t *b, uint32_t v) { return buf_put(b, &v, 4); }
static int put_i64(buf_t *b, int64_t v) { return buf_put(b, &v, 8); }

/* A string column: int32 offsets (count + 1 of them) and the bytes. */
typedef struct {
    buf_t offsets;
    buf_t data;
    int32_t count;
} strcol_t;

static int str_init(strcol_t *c) { return put_i32(&c->offsets, 0); }

static int str_push(strcol_t *c, const char *s, size_t n) {
    if (c->data.len + n > INT32_MAX) return -1;
    if (buf_put(&c->data, s, n) < 0) return -1;
    c->count++;
    return put_i32(&c->offsets, (int32_t)c->data.len);
}

static int str_push_hex(strcol_t *c, const uint8_t *s, size_t n) {
    static const char digits[] = "0123456789abcdef";
    if (buf_reserve(&c->data, 2 * n) < 0) return -1;
    char *out = c->data.data + c->data.len;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[s[i] >> 4];
        out[2 * i + 1] = digits[s[i] & 15];
    }
    c->data.len += 2 * n;
    c->count++;
    return put_i32(&c->offsets, (int32_t)c->data.len);
}

/* A MAP(VARCHAR, VARCHAR) column: per-row offsets into the keys/values entries. */
typedef struct {
    buf_t offsets;
    strcol_t keys;
    strcol_t values;
} mapcol_t;

static int map_init(mapcol_t *m) {
    if (put_i32(&m->offsets, 0) < 0) return -1;
    if (str_init(&m->keys) < 0) return -1;
    return str_init(&m->values);
}

static int map_end_row(mapcol_t *m) { return put_i32(&m->offsets, m->keys.count); }

/* ---- wire format ---------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} reader_t;

static int read_varint(reader_t *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t byte = *r->p++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* One field: its number, wire type and payload (varint value, or bytes for LEN,
 * or the 8/4 little-endian bytes for I64/I32). */
typedef struct {
    uint32_t number;
    int wire;
    uint64_t varint;
    const uint8_t *data;
    size_t len;
} field_t;

/* The field whose tag was just read (data NULL and len 0 for a varint). */
static int next_field_after_tag(reader_t *r, uint64_t tag, field_t *f) {
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    f->data = NULL;
    f->len = 0;
    if (f->number == 0 || (tag >> 3) > 0x1fffffff) return -1;
    switch (f->wire) {
    case 0:
        return read_varint(r, &f->varint);
    case 1:
        if (r->end - r->p < 8) return -1;
        f->data = r->p;
        f->len = 8;
        memcpy(&f->varint, r->p, 8);
        r->p += 8;
        return 0;
    case 2: {
        uint64_t n;
        if (read_varint(r, &n) < 0) return -1;
        if (n > (uint64_t)(r->end - r->p)) return -1;
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 0;
    }
    case 5: {
        if (r->end - r->p < 4) return -1;
        uint32_t v;
        memcpy(&v, r->p, 4);
        f->varint = v;
        f->data = r->p;
        f->len = 4;
        r->p += 4;
        return 0;
    }
    default:
        return -1; /* groups (3, 4) and invalid types: let the Python path judge */
    }
}

static int next_field(reader_t *r, field_t *f) {
    uint64_t tag;
    if (read_varint(r, &tag) < 0) return -1;
    return next_field_after_tag(r, tag, f);
}

static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            need = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + need >= n) return 0; /* truncated sequence */
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000))
            return 0; /* overlong */
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += need + 1;
    }
    return 1;
}

/* ---- the columns ---------------------------------------------------------------- */

typedef struct {
    /* per span */
    buf_t starts, ends, kinds, codes, flags, dropped_attrs, dropped_events, dropped_links, groups;
    strcol_t trace_ids, span_ids, parent_ids, trace_states, names, status_messages;
    mapcol_t attrs;
    buf_t keys; /* trace id + span id + is SERVER + SERVER's service hash, 33 bytes a span */
    buf_t event_offsets, link_offsets;
    /* per event */
    buf_t ev_times, ev_dropped;
    strcol_t ev_names;
    mapcol_t ev_attrs;
    /* per link */
    strcol_t ln_trace_ids, ln_span_ids, ln_states;
    mapcol_t ln_attrs;
    buf_t ln_dropped, ln_flags;
    /* per (resource, scope) group */
    strcol_t g_services, g_resource_schema, g_scope_names, g_scope_versions, g_scope_schema;
    mapcol_t g_resource_attrs, g_scope_attrs;
    buf_t g_resource_dropped, g_scope_dropped;
    int32_t spans, events, links, groups_count;
    PyObject *stringify; /* AnyValue bytes -> str, for the kinds C does not format */
    buf_t scratch; /* for sorting a map row */
    /* messages: spans, attributes, events, links, and those inside the values handed to
     * Python; past the limit the Python path counts them and refuses the request */
    uint64_t nested, nested_limit;
    uint64_t copied, copied_limit; /* resource bytes copied into scope groups */
} columns_t;

#define BAIL (-2) /* not an error: hand the request to the Python path */

static void buf_free(buf_t *b) { PyMem_Free(b->data); }
static void str_free(strcol_t *c) {
    buf_free(&c->offsets);
    buf_free(&c->data);
}
static void map_free(mapcol_t *m) {
    buf_free(&m->offsets);
    str_free(&m->keys);
    str_free(&m->values);
}

static void columns_free(columns_t *c) {
    buf_t *bufs[] = {&c->starts, &c->ends, &c->kinds, &c->codes, &c->flags, &c->dropped_attrs,
                     &c->dropped_events, &c->dropped_links, &c->groups, &c->keys,
                     &c->event_offsets, &c->link_offsets, &c->ev_times, &c->ev_dropped,
                     &c->ln_dropped, &c->ln_flags, &c->g_resource_dropped, &c->g_scope_dropped,
                     &c->scratch};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) buf_free(bufs[i]);
    strcol_t *strs[] = {&c->trace_ids, &c->span_ids, &c->parent_ids, &c->trace_states,
                        &c->names, &c->status_messages, &c->ev_names, &c->ln_trace_ids,
                        &c->ln_span_ids, &c->ln_states, &c->g_services, &c->g_resource_schema,
                        &c->g_scope_names, &c->g_scope_versions, &c->g_scope_schema};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) str_free(strs[i]);
    mapcol_t *maps[] = {&c->attrs, &c->ev_attrs, &c->ln_attrs, &c->g_resource_attrs,
                        &c->g_scope_attrs};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) map_free(maps[i]);
}

static int columns_init(columns_t *c) {
    strcol_t *strs[] = {&c->trace_ids, &c->span_ids, &c->parent_ids, &c->trace_states,
                        &c->names, &c->status_messages, &c->ev_names, &c->ln_trace_ids,
                        &c->ln_span_ids, &c->ln_states, &c->g_services, &c->g_resource_schema,
                        &c->g_scope_names, &c->g_scope_versions, &c->g_scope_schema};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (str_init(strs[i]) < 0) return -1;
    mapcol_t *maps[] = {&c->attrs, &c->ev_attrs, &c->ln_attrs, &c->g_resource_attrs,
                        &c->g_scope_attrs};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
        if (map_init(maps[i]) < 0) return -1;
    if (put_i32(&c->event_offsets, 0) < 0) return -1;
    return put_i32(&c->link_offsets, 0);
}

/* Counting messages. Python's protobuf objects cost ~140 bytes a message however few
 * bytes the wire spends on one (two: an empty KeyValue), so a request the Python path
 * takes is counted first (collector/decode_budget.py), and so are the array and
 * key-value-list values this path hands to Python. The kinds are the OTLP trace
 * messages; only their message-typed fields are followed. */
enum {
    M_LEAF, /* a message with no message fields (Status), or an entity ref's string */
    M_REQUEST,
    M_RESOURCE_SPANS,
    M_RESOURCE,
    M_SCOPE_SPANS,
    M_SCOPE,
    M_SPAN,
    M_EVENT,
    M_LINK,
    M_KEY_VALUE,
    M_ANY_VALUE,
    M_ARRAY,
    M_KV_LIST,
    M_ENTITY_REF,
};

static int child_kind(int kind, uint32_t number) {
    switch (kind) {
    case M_REQUEST: return number == 1 ? M_RESOURCE_SPANS : -1;
    case M_RESOURCE_SPANS: return number == 1 ? M_RESOURCE : number == 2 ? M_SCOPE_SPANS : -1;
    case M_RESOURCE: return number == 1 ? M_KEY_VALUE : number == 3 ? M_ENTITY_REF : -1;
    case M_SCOPE_SPANS: return number == 1 ? M_SCOPE : number == 2 ? M_SPAN : -1;
    case M_SCOPE: return number == 3 ? M_KEY_VALUE : -1;
    case M_SPAN:
        return number == 9    ? M_KEY_VALUE
               : number == 11 ? M_EVENT
               : number == 13 ? M_LINK
               : number == 15 ? M_LEAF
                              : -1;
    case M_EVENT: return number == 3 ? M_KEY_VALUE : -1;
    case M_LINK: return number == 4 ? M_KEY_VALUE : -1;
    case M_KEY_VALUE: return number == 2 ? M_ANY_VALUE : -1;
    case M_ANY_VALUE: return number == 5 ? M_ARRAY : number == 6 ? M_KV_LIST : -1;
    case M_ARRAY: return number == 1 ? M_ANY_VALUE : -1;
    case M_KV_LIST: return number == 1 ? M_KEY_VALUE : -1;
    /* id_keys and description_keys: each string a Python object once parsed (5.2M
     * empty ones in 20 MiB took the decode to 600 MB more, uncounted). */
    case M_ENTITY_REF: return number == 3 || number == 4 ? M_LEAF : -1;
    }
    return -1;
}

/* Past an unknown group whose start tag (of field ``number``) was just read, to its
 * end tag: protobuf's parser skips such a group and goes on with what follows, so the
 * count must too (a group before 10M attributes hid them). Nested groups are followed
 * to protobuf's depth limit; -1 for data that goes wrong (the parser stops there). */
static int skip_group(reader_t *r, uint32_t number) {
    uint32_t open[110];
    int depth = 0;
    open[0] = number;
    while (r->p < r->end) {
        uint64_t tag;
        if (read_varint(r, &tag) < 0) return -1;
        uint32_t inner = (uint32_t)(tag >> 3);
        switch (tag & 7) {
        case 3:
            if (++depth >= (int)(sizeof open / sizeof open[0])) return -1;
            open[depth] = inner;
            break;
        case 4:
            if (inner != open[depth]) return -1;
            if (depth-- == 0) return 0;
            break;
        default: {
            field_t f;
            if (next_field_after_tag(r, tag, &f) < 0) return -1;
        }
        }
    }
    return -1;
}

/* Adds the messages of ``kind`` in data, itself included, to *count, stopping once it
 * passes ``limit``. Malformed data is counted up to where it goes wrong, as far as a
 * parser gets; past 110 levels (protobuf's parser refuses 100) nothing is counted. */
static void count_in(const uint8_t *data, size_t len, int kind, int depth, uint64_t *count,
                     uint64_t limit) {
    (*count)++;
    if (depth > 110) return;
    reader_t r = {data, data + len};
    field_t f;
    while (r.p < r.end && *count <= limit) {
        uint64_t tag;
        if (read_varint(&r, &tag) < 0) return;
        if ((tag & 7) == 3) {
            if (skip_group(&r, (uint32_t)(tag >> 3)) < 0) return;
            continue;
        }
        if (next_field_after_tag(&r, tag, &f) < 0) return;
        int child = f.wire == 2 ? child_kind(kind, f.number) : -1;
        if (child == M_LEAF) (*count)++;
        else if (child > 0) count_in(f.data, f.len, child, depth + 1, count, limit);
    }
}

static PyObject *count_messages(PyObject *self, PyObject *args) {
    Py_buffer body;
    unsigned long long limit;
    if (!PyArg_ParseTuple(args, "y*K", &body, &limit)) return NULL;
    uint64_t count = 0;
    count_in((const uint8_t *)body.buf, (size_t)body.len, M_REQUEST, 0, &count, limit);
    PyBuffer_Release(&body);
    return PyLong_FromUnsignedLongLong(count);
}

/* A string field: valid UTF-8 or the Python path decides. */
static int push_text(strcol_t *col, const field_t *f) {
    if (f->wire != 2) return BAIL;
    if (!utf8_valid(f->data, f->len)) return BAIL;
    return str_push(col, (const char *)f->data, f->len) < 0 ? -1 : 0;
}

/* The text of an AnyValue, the way collector/attributes.py renders it. */
static int push_any_value(columns_t *c, strcol_t *out, const uint8_t *data, size_t len) {
    reader_t r = {data, data + len};
    field_t f, last = {0};
    int seen = 0;
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        if (f.number >= 1 && f.number <= 8) { /* the value oneof: the last one set wins */
            last = f;
            seen = 1;
        }
    }
    if (!seen) return str_push(out, "", 0) < 0 ? -1 : 0;
    char text[32];
    switch (last.number) {
    case 1: /* string_value */
        return push_text(out, &last);
    case 2: /* bool_value */
        if (last.wire != 0) return BAIL;
        return (last.varint ? str_push(out, "true", 4) : str_push(out, "false", 5)) < 0 ? -1 : 0;
    case 3: { /* int_value */
        if (last.wire != 0) return BAIL;
        /* Decimal by hand: snprintf's format parsing was a tenth of this function's time. */
        int64_t v = (int64_t)last.varint;
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        char *p = text + sizeof text;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (v < 0) *--p = '-';
        return str_push(out, p, (size_t)(text + sizeof text - p)) < 0 ? -1 : 0;
    }
    default: {
        /* double, bytes, array, key-value list (and string_value_strindex): one Python
         * implementation of their encodings (attributes.any_value_str). */
        /* Python parses all of it: every value field (a repeated array merges), groups
         * skipped, not only the last field, which the text is made of. */
        count_in(data, len, M_ANY_VALUE, 0, &c->nested, c->nested_limit);
        if (c->nested > c->nested_limit) return BAIL; /* the Python path refuses it */
        PyObject *raw = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
        if (!raw) return -1;
        PyObject *result = PyObject_CallOneArg(c->stringify, raw);
        Py_DECREF(raw);
        if (!result) return -1;
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(result, &n);
        if (!s) {
            Py_DECREF(result);
            return -1;
        }
        int rc = str_push(out, s, (size_t)n) < 0 ? -1 : 0;
        Py_DECREF(result);
        return rc;
    }
    }
}

/* One KeyValue into a map column (its row is closed by the caller). */
static int push_key_value(columns_t *c, mapcol_t *m, const field_t *kv) {
    if (++c->nested > c->nested_limit) return BAIL; /* see count_in */
    if (kv->wire != 2) return BAIL;
    reader_t r = {kv->data, kv->data + kv->len};
    field_t f, key = {0}, value = {0};
    int have_key = 0, have_value = 0;
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        if (f.number == 1) {
            if (f.wire != 2) return BAIL;
            key = f;
            have_key = 1;
        } else if (f.number == 2) {
            if (f.wire != 2 || have_value) return BAIL; /* a repeated message merges */
            value = f;
            have_value = 1;
        }
    }
    int rc = have_key ? push_text(&m->keys, &key) : (str_push(&m->keys, "", 0) < 0 ? -1 : 0);
    if (rc) return rc;
    if (!have_value) return str_push(&m->values, "", 0) < 0 ? -1 : 0;
    return push_any_value(c, &m->values, value.data, value.len);
}

/* ---- a map row's keys in sorted order ---------------------------------------------
 * The exporter stores attribute maps sorted by key (clickhouse-go's orderedmap, a byte-wise
 * string sort), so a row is sorted once its entries are in. A repeated key shows up as two
 * equal neighbours: the Python path keeps its first value. */

typedef struct {
    const char *key;            /* for comparing */
    int32_t key_start, key_len; /* the old places, in the keys' and values' data */
    int32_t value_start, value_len;
} sort_entry_t;

/* Go's string comparison: bytes, then the shorter first. */
static int key_cmp(const char *a, int32_t a_len, const char *b, int32_t b_len) {
    int32_t n = a_len < b_len ? a_len : b_len;
    int r = n ? memcmp(a, b, (size_t)n) : 0;
    return r ? r : (a_len > b_len) - (a_len < b_len);
}

static int entry_cmp(const void *x, const void *y) {
    const sort_entry_t *a = x, *b = y;
    return key_cmp(a->key, a->key_len, b->key, b->key_len);
}

/* Rewrite a column's entries [first, first + count) in the order of ``e``, via ``scratch``. */
static int rewrite_row(strcol_t *col, int32_t first, int32_t count, const sort_entry_t *e,
                       int values, buf_t *scratch) {
    int32_t *off = (int32_t *)col->offsets.data;
    int32_t base = off[first], pos = base;
    size_t size = (size_t)(off[first + count] - base);
    scratch->len = 0;
    if (size && buf_put(scratch, col->data.data + base, size) < 0) return -1;
    for (int32_t i = 0; i < count; i++) {
        int32_t from = (values ? e[i].value_start : e[i].key_start) - base;
        int32_t n = values ? e[i].value_len : e[i].key_len;
        if (n) memcpy(col->data.data + pos, scratch->data + from, (size_t)n);
        pos += n;
        off[first + i + 1] = pos;
    }
    return 0;
}

/* Sort the row's entries, rewriting them only when they were out of order. */
static int sort_row(mapcol_t *m, int32_t first, int32_t count, buf_t *scratch) {
    sort_entry_t stack[32];
    sort_entry_t *e = count <= 32 ? stack : PyMem_Malloc((size_t)count * sizeof *e);
    if (!e) return -1;
    const int32_t *ko = (const int32_t *)m->keys.offsets.data;
    const int32_t *vo = (const int32_t *)m->values.offsets.data;
    for (int32_t i = 0; i < count; i++) {
        e[i].key_start = ko[first + i];
        e[i].key_len = ko[first + i + 1] - ko[first + i];
        e[i].key = m->keys.data.data + e[i].key_start;
        e[i].value_start = vo[first + i];
        e[i].value_len = vo[first + i + 1] - vo[first + i];
    }
    int rc = 0, moved = 0;
    if (count <= 32) {
        /* The usual row: an insertion sort (one pass when already sorted). Two equal keys
         * meet when the later one stops at the earlier one. */
        for (int32_t i = 1; i < count && !rc; i++) {
            sort_entry_t x = e[i];
            int32_t j = i;
            int r = 1;
            for (; j > 0 && (r = entry_cmp(&e[j - 1], &x)) > 0; j--) e[j] = e[j - 1];
            if (j > 0 && r == 0) rc = BAIL;
            moved |= j != i;
            e[j] = x;
        }
    } else {
        qsort(e, (size_t)count, sizeof *e, entry_cmp);
        moved = 1;
        for (int32_t i = 1; i < count && !rc; i++)
            if (entry_cmp(&e[i - 1], &e[i]) == 0) rc = BAIL;
    }
    if (!rc && moved &&
        (rewrite_row(&m->keys, first, count, e, 0, scratch) < 0 ||
         rewrite_row(&m->values, first, count, e, 1, scratch) < 0))
        rc = -1;
    if (e != stack) PyMem_Free(e);
    return rc;
}

/* Close the row that started at entry ``first``: sorted by key, or BAIL on a repeated key. */
static int close_map_row(mapcol_t *m, int32_t first, buf_t *scratch) {
    int32_t count = m->keys.count - first;
    if (count > 1) {
        if (!m->keys.data.data) return BAIL; /* no key bytes at all: every key is "" */
        int rc = sort_row(m, first, count, scratch);
        if (rc) return rc;
    }
    return map_end_row(m) < 0 ? -1 : 0;
}

/* Attributes and scalars of an InstrumentationScope (or of an empty one). */
static int push_scope(columns_t *c, const uint8_t *data, size_t len) {
    reader_t r = {data, data + len};
    field_t f, name = {0}, version = {0};
    uint32_t dropped = 0;
    int32_t first = c->g_scope_attrs.keys.count;
    int rc;
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        switch (f.number) {
        case 1: name = f; break;
        case 2: version = f; break;
        case 3:
            if ((rc = push_key_value(c, &c->g_scope_attrs, &f))) return rc;
            break;
        case 4:
            if (f.wire != 0) return BAIL;
            dropped = (uint32_t)f.varint;
            break;
        }
    }
    if ((rc = close_map_row(&c->g_scope_attrs, first, &c->scratch))) return rc;
    if ((rc = name.number ? push_text(&c->g_scope_names, &name)
                          : (str_push(&c->g_scope_names, "", 0) < 0 ? -1 : 0)))
        return rc;
    if ((rc = version.number ? push_text(&c->g_scope_versions, &version)
                             : (str_push(&c->g_scope_versions, "", 0) < 0 ? -1 : 0)))
        return rc;
    return put_u32(&c->g_scope_dropped, dropped) < 0 ? -1 : 0;
}

static int is_zero(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i]) return 0;
    return 1;
}

static int push_event(columns_t *c, const field_t *ev) {
    if (++c->nested > c->nested_limit) return BAIL; /* see count_in */
    if (ev->wire != 2) return BAIL;
    reader_t r = {ev->data, ev->data + ev->len};
    field_t f, name = {0};
    uint64_t time = 0;
    uint32_t dropped = 0;
    int32_t first = c->ev_attrs.keys.count;
    int rc;
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        switch (f.number) {
        case 1:
            if (f.wire != 1) return BAIL;
            time = f.varint;
            break;
        case 2: name = f; break;
        case 3:
            if ((rc = push_key_value(c, &c->ev_attrs, &f))) return rc;
            break;
        case 4:
            if (f.wire != 0) return BAIL;
            dropped = (uint32_t)f.varint;
            break;
        }
    }
    if (time >= (uint64_t)INT64_MAX) return BAIL; /* past 2262: Python rejects the span */
    if ((rc = close_map_row(&c->ev_attrs, first, &c->scratch))) return rc;
    if ((rc = name.number ? push_text(&c->ev_names, &name)
                          : (str_push(&c->ev_names, "", 0) < 0 ? -1 : 0)))
        return rc;
    c->events++;
    if (put_i64(&c->ev_times, (int64_t)time) < 0) return -1;
    return put_u32(&c->ev_dropped, dropped) < 0 ? -1 : 0;
}

static int push_link(columns_t *c, const field_t *ln) {
    if (++c->nested > c->nested_limit) return BAIL; /* see count_in */
    if (ln->wire != 2) return BAIL;
    reader_t r = {ln->data, ln->data + ln->len};
    field_t f, trace = {0}, span = {0}, state = {0};
    uint32_t dropped = 0, flags = 0;
    int32_t first = c->ln_attrs.keys.count;
    int rc;
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        switch (f.number) {
        case 1: trace = f; break;
        case 2: span = f; break;
        case 3: state = f; break;
        case 4:
            if ((rc = push_key_value(c, &c->ln_attrs, &f))) return rc;
            break;
        case 5:
            if (f.wire != 0) return BAIL;
            dropped = (uint32_t)f.varint;
            break;
        case 6:
            if (f.wire != 5) return BAIL;
            flags = (uint32_t)f.varint;
            break;
        }
    }
    if ((trace.number && trace.wire != 2) || (span.number && span.wire != 2)) return BAIL;
    size_t trace_len = trace.number ? trace.len : 0, span_len = span.number ? span.len : 0;
    /* An id of another length: the Python path rejects the span and says why. */
    if ((trace_len && trace_len != 16) || (span_len && span_len != 8)) return BAIL;
    /* All zeros is "no id", written '' like the ClickHouse exporter does. */
    if (trace_len && is_zero(trace.data, 16)) trace_len = 0;
    if (span_len && is_zero(span.data, 8)) span_len = 0;
    if ((rc = close_map_row(&c->ln_attrs, first, &c->scratch))) return rc;
    if (str_push_hex(&c->ln_trace_ids, trace.data, trace_len) < 0) return -1;
    if (str_push_hex(&c->ln_span_ids, span.data, span_len) < 0) return -1;
    if ((rc = state.number ? push_text(&c->ln_states, &state)
                           : (str_push(&c->ln_states, "", 0) < 0 ? -1 : 0)))
        return rc;
    c->links++;
    if (put_u32(&c->ln_dropped, dropped) < 0) return -1;
    return put_u32(&c->ln_flags, flags) < 0 ? -1 : 0;
}

static int push_span(columns_t *c, const field_t *sp, int32_t group, uint64_t service_hash) {
    if (++c->nested > c->nested_limit) return BAIL; /* see count_in */
    if (sp->wire != 2) return BAIL;
    reader_t r = {sp->data, sp->data + sp->len};
    field_t f, trace = {0}, span = {0}, parent = {0}, state = {0}, name = {0}, status = {0};
    uint64_t start = 0, end = 0;
    int64_t kind = 0;
    uint32_t flags = 0, dropped_attrs = 0, dropped_events = 0, dropped_links = 0;
    int32_t first = c->attrs.keys.count;
    int have_status = 0, rc;
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        switch (f.number) {
        case 1: trace = f; break;
        case 2: span = f; break;
        case 3: state = f; break;
        case 4: parent = f; break;
        case 5: name = f; break;
        case 6:
            if (f.wire != 0) return BAIL;
            kind = (int32_t)(uint32_t)f.varint; /* an int32 enum, as protobuf truncates it */
            break;
        case 7:
            if (f.wire != 1) return BAIL;
            start = f.varint;
            break;
        case 8:
            if (f.wire != 1) return BAIL;
            end = f.varint;
            break;
        case 9:
            if ((rc = push_key_value(c, &c->attrs, &f))) return rc;
            break;
        case 10:
            if (f.wire != 0) return BAIL;
            dropped_attrs = (uint32_t)f.varint;
            break;
        case 11:
            if ((rc = push_event(c, &f))) return rc;
            break;
        case 12:
            if (f.wire != 0) return BAIL;
            dropped_events = (uint32_t)f.varint;
            break;
        case 13:
            if ((rc = push_link(c, &f))) return rc;
            break;
        case 14:
            if (f.wire != 0) return BAIL;
            dropped_links = (uint32_t)f.varint;
            break;
        case 15:
            if (f.wire != 2 || have_status) return BAIL;
            status = f;
            have_status = 1;
            break;
        case 16:
            if (f.wire != 5) return BAIL;
            flags = (uint32_t)f.varint;
            break;
        }
    }
    /* Invalid ids: the Python path rejects the span and says why (partial success). */
    if (trace.wire != 2 || trace.len != 16 || is_zero(trace.data, 16)) return BAIL;
    if (span.wire != 2 || span.len != 8 || is_zero(span.data, 8)) return BAIL;
    if (parent.number && (parent.wire != 2 || (parent.len && parent.len != 8))) return BAIL;
    size_t parent_len = parent.number ? parent.len : 0;
    if (parent_len && is_zero(parent.data, 8)) parent_len = 0; /* all zeros: a root */
    if (start >= (uint64_t)INT64_MAX || end >= (uint64_t)INT64_MAX) return BAIL;
    if ((rc = close_map_row(&c->attrs, first, &c->scratch))) return rc;

    int64_t code = 0;
    field_t message = {0};
    if (have_status) {
        reader_t sr = {status.data, status.data + status.len};
        while (sr.p < sr.end) {
            if (next_field(&sr, &f) < 0) return BAIL;
            if (f.number == 2) message = f;
            else if (f.number == 3) {
                if (f.wire != 0) return BAIL;
                code = (int32_t)(uint32_t)f.varint;
            }
        }
    }
    if ((rc = state.number ? push_text(&c->trace_states, &state)
                           : (str_push(&c->trace_states, "", 0) < 0 ? -1 : 0)))
        return rc;
    if ((rc = name.number ? push_text(&c->names, &name) : (str_push(&c->names, "", 0) < 0 ? -1 : 0)))
        return rc;
    if ((rc = message.number ? push_text(&c->status_messages, &message)
                             : (str_push(&c->status_messages, "", 0) < 0 ? -1 : 0)))
        return rc;
    if (str_push_hex(&c->trace_ids, trace.data, 16) < 0) return -1;
    if (str_push_hex(&c->span_ids, span.data, 8) < 0) return -1;
    if (str_push_hex(&c->parent_ids, parent.data, parent_len) < 0) return -1;
    /* flowscope/store/dedup.py: trace id, span id, then for a SERVER span (kind 2) 1 and
     * its service's FNV-1a hash (little-endian), else 9 zeros */
    uint8_t tail[9] = {0};
    if (kind == 2) {
        tail[0] = 1;
        for (int i = 0; i < 8; i++) tail[1 + i] = (uint8_t)(service_hash >> (8 * i));
    }
    if (buf_put(&c->keys, trace.data, 16) < 0 || buf_put(&c->keys, span.data, 8) < 0 ||
        buf_put(&c->keys, tail, sizeof tail) < 0)
        return -1;
    if (put_i64(&c->starts, (int64_t)start) < 0 || put_i64(&c->ends, (int64_t)end) < 0) return -1;
    /* Indices into flatten.py's SPAN_KINDS / STATUS_CODES; a number outside the enum is
     * their last entry, "" (what pdata's String() gives and the exporter stores). */
    if (put_i32(&c->kinds, (kind >= 0 && kind < 6) ? (int32_t)kind : 6) < 0) return -1;
    if (put_i32(&c->codes, (code >= 0 && code < 3) ? (int32_t)code : 3) < 0) return -1;
    if (put_u32(&c->flags, flags) < 0 || put_u32(&c->dropped_attrs, dropped_attrs) < 0 ||
        put_u32(&c->dropped_events, dropped_events) < 0 ||
        put_u32(&c->dropped_links, dropped_links) < 0 || put_i32(&c->groups, group) < 0)
        return -1;
    if (put_i32(&c->event_offsets, c->events) < 0) return -1;
    if (put_i32(&c->link_offsets, c->links) < 0) return -1;
    c->spans++;
    return 0;
}

/* The resource's attributes once per ResourceSpans, copied into each of its groups. */
typedef struct {
    mapcol_t attrs; /* one row */
    int have_service;
    field_t service;
    uint64_t service_hash; /* FNV-1a of the service name ("" when none) */
    uint32_t dropped;
} resource_t;

static uint64_t fnv1a64(const uint8_t *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int parse_resource(columns_t *c, resource_t *res, const uint8_t *data, size_t len) {
    reader_t r = {data, data + len};
    field_t f;
    int rc;
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        switch (f.number) {
        case 1:
            if ((rc = push_key_value(c, &res->attrs, &f))) return rc;
            break;
        case 2:
            if (f.wire != 0) return BAIL;
            res->dropped = (uint32_t)f.varint;
            break;
        case 3:
            return BAIL; /* entity_refs: the Python path keeps them */
        }
    }
    if ((rc = close_map_row(&res->attrs, 0, &c->scratch))) return rc;
    /* service.name: keys are unique here (duplicates go to the Python path). */
    const int32_t *ko = (const int32_t *)res->attrs.keys.offsets.data;
    const int32_t *vo = (const int32_t *)res->attrs.values.offsets.data;
    for (int32_t i = 0; i < res->attrs.keys.count; i++) {
        if (ko[i + 1] - ko[i] == 12 && memcmp(res->attrs.keys.data.data + ko[i], "service.name", 12) == 0) {
            res->have_service = 1;
            res->service.data = (const uint8_t *)res->attrs.values.data.data + vo[i];
            res->service.len = (size_t)(vo[i + 1] - vo[i]);
            break;
        }
    }
    res->service_hash = fnv1a64(res->have_service ? res->service.data : NULL,
                                res->have_service ? res->service.len : 0);
    return 0;
}

static int copy_resource(columns_t *c, const resource_t *res, const field_t *schema) {
    const int32_t *ko = (const int32_t *)res->attrs.keys.offsets.data;
    const int32_t *vo = (const int32_t *)res->attrs.values.offsets.data;
    for (int32_t i = 0; i < res->attrs.keys.count; i++) {
        if (str_push(&c->g_resource_attrs.keys, res->attrs.keys.data.data + ko[i], (size_t)(ko[i + 1] - ko[i])) < 0 ||
            str_push(&c->g_resource_attrs.values, res->attrs.values.data.data + vo[i], (size_t)(vo[i + 1] - vo[i])) < 0)
            return -1;
    }
    if (map_end_row(&c->g_resource_attrs) < 0) return -1;
    if (str_push(&c->g_services, res->have_service ? (const char *)res->service.data : "",
                 res->have_service ? res->service.len : 0) < 0)
        return -1;
    if (put_u32(&c->g_resource_dropped, res->dropped) < 0) return -1;
    int rc = schema->number ? push_text(&c->g_resource_schema, schema)
                            : (str_push(&c->g_resource_schema, "", 0) < 0 ? -1 : 0);
    return rc;
}

static int push_scope_spans(columns_t *c, const resource_t *res, const field_t *rs_schema,
                            const field_t *ss) {
    if (ss->wire != 2) return BAIL;
    /* Each scope group gets its resource's attributes and schema url (a 4 MB url in 400
     * empty groups took 5 GB): a resource of 200k attributes in
     * 300 groups, a 2.9 MB request, took 2 GB. Past the limit the Python path refuses it
     * (collector/decode_budget.py). */
    c->copied += res->attrs.keys.data.len + res->attrs.values.data.len +
                 16 * (uint64_t)res->attrs.keys.count + rs_schema->len;
    if (c->copied > c->copied_limit) return BAIL;
    reader_t r = {ss->data, ss->data + ss->len};
    field_t f, scope = {0}, schema = {0};
    int have_scope = 0, rc;
    /* First the scope and schema url (they may follow the spans on the wire). */
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        if (f.number == 1) {
            if (f.wire != 2 || have_scope) return BAIL;
            scope = f;
            have_scope = 1;
        } else if (f.number == 3) {
            schema = f;
        }
    }
    int32_t group = c->groups_count++;
    if ((rc = copy_resource(c, res, rs_schema))) return rc;
    if ((rc = push_scope(c, have_scope ? scope.data : NULL, have_scope ? scope.len : 0))) return rc;
    if ((rc = schema.number ? push_text(&c->g_scope_schema, &schema)
                            : (str_push(&c->g_scope_schema, "", 0) < 0 ? -1 : 0)))
        return rc;
    r.p = ss->data;
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        if (f.number == 2 && (rc = push_span(c, &f, group, res->service_hash))) return rc;
    }
    return 0;
}

static int push_resource_spans(columns_t *c, const field_t *rs) {
    if (rs->wire != 2) return BAIL;
    reader_t r = {rs->data, rs->data + rs->len};
    field_t f, resource = {0}, schema = {0};
    int have_resource = 0, rc;
    while (r.p < r.end) {
        if (next_field(&r, &f) < 0) return BAIL;
        if (f.number == 1) {
            if (f.wire != 2 || have_resource) return BAIL;
            resource = f;
            have_resource = 1;
        } else if (f.number == 3) {
            schema = f;
        }
    }
    resource_t res;
    memset(&res, 0, sizeof res);
    if (map_init(&res.attrs) < 0) {
        map_free(&res.attrs);
        return -1;
    }
    rc = parse_resource(c, &res, have_resource ? resource.data : NULL,
                        have_resource ? resource.len : 0);
    r.p = rs->data;
    while (rc == 0 && r.p < r.end) {
        if (next_field(&r, &f) < 0) rc = BAIL;
        else if (f.number == 2) rc = push_scope_spans(c, &res, &schema, &f);
    }
    map_free(&res.attrs);
    return rc;
}

/* ---- Python interface ------------------------------------------------------------ */

static PyObject *as_bytes(const buf_t *b) {
    return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len);
}

static int set_item(PyObject *dict, const char *name, PyObject *value) {
    if (!value) return -1;
    int rc = PyDict_SetItemString(dict, name, value);
    Py_DECREF(value);
    return rc;
}

static int set_str(PyObject *dict, const char *name, const strcol_t *col) {
    PyObject *pair = Py_BuildValue("(NN)", as_bytes(&col->offsets), as_bytes(&col->data));
    return set_item(dict, name, pair);
}

static int set_map(PyObject *dict, const char *name, const mapcol_t *m) {
    PyObject *triple = Py_BuildValue("(N(NN)(NN))", as_bytes(&m->offsets), as_bytes(&m->keys.offsets),
                                     as_bytes(&m->keys.data), as_bytes(&m->values.offsets),
                                     as_bytes(&m->values.data));
    return set_item(dict, name, triple);
}

static PyObject *build_result(const columns_t *c) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    struct { const char *name; const buf_t *b; } bufs[] = {
        {"starts", &c->starts}, {"ends", &c->ends}, {"kinds", &c->kinds}, {"codes", &c->codes},
        {"flags", &c->flags}, {"dropped_attrs", &c->dropped_attrs},
        {"dropped_events", &c->dropped_events}, {"dropped_links", &c->dropped_links},
        {"groups", &c->groups}, {"keys", &c->keys}, {"event_offsets", &c->event_offsets},
        {"link_offsets", &c->link_offsets}, {"ev_times", &c->ev_times},
        {"ev_dropped", &c->ev_dropped}, {"ln_dropped", &c->ln_dropped},
        {"ln_flags", &c->ln_flags}, {"g_resource_dropped", &c->g_resource_dropped},
        {"g_scope_dropped", &c->g_scope_dropped},
    };
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        if (set_item(d, bufs[i].name, as_bytes(bufs[i].b)) < 0) goto fail;
    struct { const char *name; const strcol_t *s; } strs[] = {
        {"trace_ids", &c->trace_ids}, {"span_ids", &c->span_ids}, {"parent_ids", &c->parent_ids},
        {"trace_states", &c->trace_states}, {"names", &c->names},
        {"status_messages", &c->status_messages}, {"ev_names", &c->ev_names},
        {"ln_trace_ids", &c->ln_trace_ids}, {"ln_span_ids", &c->ln_span_ids},
        {"ln_states", &c->ln_states}, {"g_services", &c->g_services},
        {"g_resource_schema", &c->g_resource_schema}, {"g_scope_names", &c->g_scope_names},
        {"g_scope_versions", &c->g_scope_versions}, {"g_scope_schema", &c->g_scope_schema},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (set_str(d, strs[i].name, strs[i].s) < 0) goto fail;
    struct { const char *name; const mapcol_t *m; } maps[] = {
        {"attrs", &c->attrs}, {"ev_attrs", &c->ev_attrs}, {"ln_attrs", &c->ln_attrs},
        {"g_resource_attrs", &c->g_resource_attrs}, {"g_scope_attrs", &c->g_scope_attrs},
    };
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
        if (set_map(d, maps[i].name, maps[i].m) < 0) goto fail;
    if (set_item(d, "spans", PyLong_FromLong(c->spans)) < 0 ||
        set_item(d, "events", PyLong_FromLong(c->events)) < 0 ||
        set_item(d, "links", PyLong_FromLong(c->links)) < 0 ||
        set_item(d, "group_count", PyLong_FromLong(c->groups_count)) < 0)
        goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *flatten(PyObject *self, PyObject *args) {
    Py_buffer body;
    PyObject *stringify;
    unsigned long long nested_limit, copied_limit;
    if (!PyArg_ParseTuple(args, "y*OKK", &body, &stringify, &nested_limit, &copied_limit))
        return NULL;
    columns_t c;
    memset(&c, 0, sizeof c);
    c.stringify = stringify;
    c.nested_limit = nested_limit;
    c.copied_limit = copied_limit;
    int rc = columns_init(&c) < 0 ? -1 : 0;
    reader_t r = {(const uint8_t *)body.buf, (const uint8_t *)body.buf + body.len};
    field_t f;
    while (rc == 0 && r.p < r.end) {
        if (next_field(&r, &f) < 0) rc = BAIL;
        else if (f.number == 1) rc = push_resource_spans(&c, &f);
    }
    PyObject *result = NULL;
    if (rc == 0) {
        result = build_result(&c);
    } else if (rc == BAIL) {
        result = Py_NewRef(Py_None);
    } else if (!PyErr_Occurred()) {
        PyErr_NoMemory();
    }
    columns_free(&c);
    PyBuffer_Release(&body);
    return result;
}

static PyMethodDef methods[] = {
    {"flatten", flatten, METH_VARARGS,
     "flatten(body, stringify, nested_limit, copied_limit) -> dict of column buffers, or "
     "None for the Python path (also when array and key-value-list values hold more than "
     "nested_limit messages, or resources copied into scope groups more than copied_limit "
     "bytes)"},
    {"count_messages", count_messages, METH_VARARGS,
     "count_messages(body, limit) -> the OTLP messages in body, counting stopped past limit"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastflatten", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastflatten(void) { return PyModule_Create(&module); }
