/* server/request.c - parsing and validation of request bodies (see request.h). Every failure names
 * the parameter at fault; JSON syntax errors give jansson's line and column. The parsed strings are
 * copies, so the JSON tree is released before returning. */
#include "server/request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void server_error_set(server_error *e, int http_status, const char *type, const char *code, const char *param,
                      const char *fmt, ...) {
    e->http_status = http_status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

#define BAD(err, param, ...) (server_error_set((err), 400, "invalid_request_error", NULL, (param), __VA_ARGS__), false)
#define NO_MEMORY(err) (server_error_set((err), 500, "server_error", NULL, NULL, "out of memory"), false)

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

/* ---- Typed optional fields: absent or null leaves *out unchanged and *given false ----------------- */
static bool opt_number(json_t *obj, const char *key, double lo, double hi, bool lo_open, double *out, server_error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) return BAD(err, key, "'%s' must be a number, not %s", key, type_name(v));
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
        return BAD(err, key, "'%s' must be %s %g and <= %g, got %g", key, lo_open ? ">" : ">=", lo, hi, x);
    *out = x;
    return true;
}

static bool opt_int(json_t *obj, const char *key, long long lo, long long hi, long long *out, bool *given,
                    server_error *err) {
    json_t *v = json_object_get(obj, key);
    if (given) *given = false;
    if (!v || json_is_null(v)) return true;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e18) {
        x = (long long)json_real_value(v);
    } else {
        return BAD(err, key, "'%s' must be an integer, not %s", key, type_name(v));
    }
    if (x < lo || x > hi) return BAD(err, key, "'%s' must be between %lld and %lld, got %lld", key, lo, hi, x);
    *out = x;
    if (given) *given = true;
    return true;
}

static bool opt_bool(json_t *obj, const char *key, bool *out, server_error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) return BAD(err, key, "'%s' must be a boolean, not %s", key, type_name(v));
    *out = json_is_true(v);
    return true;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- Parameters the engine does not support yet ---------------------------------------------------- */
typedef enum neutral { N_FALSE, N_ZERO, N_ONE, N_EMPTY, N_TRUE, N_NULL } neutral;

static const struct {
    const char *key;
    neutral value; /* the value that asks for nothing (null always does) */
} unsupported[] = {
    {"echo", N_FALSE}, {"suffix", N_EMPTY},
    {"tools", N_EMPTY}, {"functions", N_EMPTY}, {"min_tokens", N_ZERO},
    {"include_stop_str_in_output", N_FALSE},
    {"skip_special_tokens", N_TRUE}, {"prompt_logprobs", N_NULL}, {"guided_json", N_NULL},
    {"guided_regex", N_NULL}, {"guided_choice", N_NULL}, {"guided_grammar", N_NULL}, {"prediction", N_NULL},
    {"audio", N_NULL}, {"chat_template", N_NULL}, {"continue_final_message", N_FALSE},
};

static bool is_neutral(const json_t *v, neutral n) {
    if (json_is_null(v)) return true;
    switch (n) {
    case N_FALSE: return json_is_false(v);
    case N_TRUE: return json_is_true(v);
    case N_ZERO: return json_is_number(v) && json_number_value(v) == 0;
    case N_ONE: return json_is_number(v) && json_number_value(v) == 1;
    case N_EMPTY:
        return (json_is_object(v) && json_object_size(v) == 0) || (json_is_array(v) && json_array_size(v) == 0) ||
               (json_is_string(v) && json_string_length(v) == 0);
    case N_NULL: return false;
    }
    return false;
}

static bool check_unsupported(json_t *root, server_request_kind kind, int64_t n, server_error *err) {
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        json_t *v = json_object_get(root, unsupported[i].key);
        if (v && !is_neutral(v, unsupported[i].value))
            return BAD(err, unsupported[i].key, "'%s' is not supported yet", unsupported[i].key);
    }
    json_t *v = json_object_get(root, "best_of");
    if (v && !json_is_null(v) && !json_is_true(json_object_get(root, "use_beam_search")) &&
        !(json_is_integer(v) && json_integer_value(v) == n))
        return BAD(err, "best_of", "'best_of' is not supported yet (only best_of equal to n)");
    const char *choices[] = {"tool_choice", "function_call"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(root, choices[i]);
        if (v && !json_is_null(v) &&
            !(json_is_string(v) && (!strcmp(json_string_value(v), "none") || !strcmp(json_string_value(v), "auto"))))
            return BAD(err, choices[i], "'%s' is not supported yet", choices[i]);
    }
    v = json_object_get(root, "response_format");
    if (v && !json_is_null(v)) {
        json_t *type = json_is_object(v) ? json_object_get(v, "type") : NULL;
        if (!json_is_string(type) || strcmp(json_string_value(type), "text"))
            return BAD(err, "response_format", "'response_format' other than {\"type\": \"text\"} is not supported yet");
    }
    (void)kind;
    return true;
}

/* ---- Prompts and messages ------------------------------------------------------------------------ */
static bool parse_ids(json_t *arr, const char *param, server_request *r, server_error *err) {
    size_t n = json_array_size(arr);
    r->ids = malloc((n ? n : 1) * sizeof *r->ids);
    if (!r->ids) return NO_MEMORY(err);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(arr, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return BAD(err, param, "'%s'[%zu] must be a token id (an integer >= 0)", param, i);
        r->ids[i] = (int32_t)json_integer_value(t);
    }
    r->n_ids = n;
    r->has_ids = true;
    return true;
}

static bool parse_prompt(json_t *p, server_request *r, server_error *err) {
    if (!p || json_is_null(p)) return BAD(err, "prompt", "'prompt' is required");
    if (json_is_string(p)) {
        r->prompt_len = json_string_length(p);
        return (r->prompt = dup_bytes(json_string_value(p), r->prompt_len)) ? true : NO_MEMORY(err);
    }
    if (!json_is_array(p)) return BAD(err, "prompt", "'prompt' must be a string or an array, not %s", type_name(p));
    size_t n = json_array_size(p);
    if (n == 0) return BAD(err, "prompt", "'prompt' is empty");
    json_t *first = json_array_get(p, 0);
    if (json_is_integer(first)) return parse_ids(p, "prompt", r, err);
    if (n > 1)
        return BAD(err, "prompt", "batched prompts (an array of %zu prompts) are not supported yet: send one request "
                   "per prompt", n);
    if (json_is_string(first)) {
        r->prompt_len = json_string_length(first);
        return (r->prompt = dup_bytes(json_string_value(first), r->prompt_len)) ? true : NO_MEMORY(err);
    }
    if (json_is_array(first)) return parse_ids(first, "prompt", r, err);
    return BAD(err, "prompt", "'prompt' must be a string, an array of token ids, or a one-element array of either");
}

/* A message's content: a string, null, or an array of {"type": "text", "text": ...} parts. */
static bool parse_content(json_t *c, size_t i, char **out, server_error *err) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!c || json_is_null(c)) return (*out = strdup("")) ? true : NO_MEMORY(err);
    if (json_is_string(c))
        return (*out = dup_bytes(json_string_value(c), json_string_length(c))) ? true : NO_MEMORY(err);
    if (!json_is_array(c)) return BAD(err, param, "'%s' must be a string or an array of parts, not %s", param, type_name(c));
    size_t total = 0;
    for (size_t j = 0; j < json_array_size(c); j++) {
        json_t *part = json_array_get(c, j), *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type))
            return BAD(err, param, "'%s'[%zu] must be an object with a string 'type'", param, j);
        if (strcmp(json_string_value(type), "text"))
            return BAD(err, param, "'%s'[%zu]: content of type '%.40s' is not supported yet", param, j,
                       json_string_value(type));
        if (!json_is_string(text)) return BAD(err, param, "'%s'[%zu].text must be a string", param, j);
        total += json_string_length(text) + 1;
    }
    char *s = malloc(total + 1);
    if (!s) return NO_MEMORY(err);
    size_t at = 0;
    for (size_t j = 0; j < json_array_size(c); j++) { /* parts joined by newlines, as vLLM does */
        json_t *text = json_object_get(json_array_get(c, j), "text");
        if (j) s[at++] = '\n';
        memcpy(s + at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
    }
    s[at] = '\0';
    *out = s;
    return true;
}

static bool parse_messages(json_t *m, server_request *r, server_error *err) {
    if (!m || json_is_null(m)) return BAD(err, "messages", "'messages' is required");
    if (!json_is_array(m)) return BAD(err, "messages", "'messages' must be an array, not %s", type_name(m));
    size_t n = json_array_size(m);
    if (n == 0) return BAD(err, "messages", "'messages' is empty");
    r->messages = calloc(n, sizeof *r->messages);
    if (!r->messages) return NO_MEMORY(err);
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(m, i), *role = json_object_get(msg, "role");
        char param[64];
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_object(msg)) return BAD(err, "messages", "'messages[%zu]' must be an object", i);
        if (!json_is_string(role)) return BAD(err, param, "'%s' must be a string", param);
        const char *name = json_string_value(role);
        if (!strcmp(name, "developer")) name = "system"; /* OpenAI's newer name for the system role */
        if (strcmp(name, "system") && strcmp(name, "user") && strcmp(name, "assistant"))
            return BAD(err, param, "'%s' '%.40s' is not supported yet (system, developer, user, assistant are)",
                       param, name);
        json_t *calls = json_object_get(msg, "tool_calls");
        if (calls && !is_neutral(calls, N_EMPTY))
            return BAD(err, "messages", "'messages[%zu].tool_calls' is not supported yet", i);
        char *content = NULL, *role_copy = strdup(name);
        if (!role_copy) return NO_MEMORY(err);
        r->messages[i].role = role_copy;
        r->n_messages = i + 1;
        if (!parse_content(json_object_get(msg, "content"), i, &content, err)) return false;
        r->messages[i].content = content;
    }
    return true;
}

static bool parse_stop(json_t *v, server_request *r, server_error *err) {
    if (!v || json_is_null(v)) return true;
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v))
        return BAD(err, "stop", "'stop' must be a string or an array of strings, not %s", type_name(v));
    if (n > SERVER_MAX_STOP) return BAD(err, "stop", "'stop' has %zu strings; at most %d are allowed", n, SERVER_MAX_STOP);
    if (n == 0) return true;
    r->sampling.stop = NULL;
    r->stop = calloc(n, sizeof *r->stop);
    if (!r->stop) return NO_MEMORY(err);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(s)) return BAD(err, "stop", "'stop'[%zu] must be a string", i);
        if (json_string_length(s) == 0) return BAD(err, "stop", "'stop' strings must not be empty");
        if (json_string_length(s) > SERVER_MAX_STOP_BYTES)
            return BAD(err, "stop", "'stop' strings must be at most %d bytes", SERVER_MAX_STOP_BYTES);
        if (!(r->stop[i] = dup_bytes(json_string_value(s), json_string_length(s)))) return NO_MEMORY(err);
        r->n_stop = i + 1;
    }
    r->sampling.stop = (const char *const *)r->stop;
    r->sampling.n_stop = r->n_stop;
    return true;
}

/* ---- Search strategies (engine/search.h): beams, contrastive search, DoLa ------------------------------ */
static bool parse_search(json_t *root, server_request *r, server_error *err) {
    pagoda_sampling_params *sp = &r->sampling;
    long long beams = sp->num_beams > 1 ? sp->num_beams : 1, best_of = 0; /* absent: keep what r holds */
    double length_penalty = sp->length_penalty, alpha = sp->penalty_alpha;
    bool use_beam_search = false;
    if (!opt_int(root, "num_beams", 1, SERVER_MAX_N, &beams, NULL, err) ||
        !opt_bool(root, "use_beam_search", &use_beam_search, err) ||
        !opt_int(root, "best_of", 1, SERVER_MAX_N, &best_of, NULL, err) ||
        !opt_number(root, "length_penalty", -1e6, 1e6, false, &length_penalty, err) ||
        !opt_bool(root, "early_stopping", &sp->early_stopping, err) ||
        !opt_number(root, "penalty_alpha", 0, 1, false, &alpha, err))
        return false;
    if (use_beam_search) beams = best_of > 0 ? best_of : sp->n; /* vLLM's older beam API */
    if (beams > 1 && sp->n > beams)
        return BAD(err, "n", "'n' (%d) must not exceed 'num_beams' (%lld): beam search returns the n best beams",
                   sp->n, beams);
    if (alpha > 0 && sp->top_k < 2)
        return BAD(err, "penalty_alpha", "'penalty_alpha' (contrastive search) needs 'top_k' >= 2");
    sp->num_beams = (int32_t)beams;
    sp->length_penalty = (float)length_penalty;
    sp->penalty_alpha = (float)alpha;
    json_t *v = json_object_get(root, "dola_layers");
    if (!v || json_is_null(v)) return true;
    char buf[512];
    size_t len = 0;
    if (json_is_string(v) && (!strcmp(json_string_value(v), "low") || !strcmp(json_string_value(v), "high"))) {
        len = (size_t)snprintf(buf, sizeof buf, "%s", json_string_value(v));
    } else if (json_is_array(v) && json_array_size(v) > 0 && json_array_size(v) <= 64) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 100000)
                return BAD(err, "dola_layers", "'dola_layers' entries must be layer indices >= 0");
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%lld", i ? "," : "", json_integer_value(e));
        }
    } else {
        return BAD(err, "dola_layers", "'dola_layers' must be \"low\", \"high\" or an array of layer indices");
    }
    if (!(r->dola_layers = dup_bytes(buf, len))) return NO_MEMORY(err);
    sp->dola_layers = r->dola_layers;
    return true;
}

/* ---- The sampler chain's extras: penalties, typical-p, logit bias, stop token ids, logprobs ---------- */
static bool parse_logit_bias(json_t *v, server_request *r, server_error *err) {
    if (!v || json_is_null(v)) return true;
    if (!json_is_object(v))
        return BAD(err, "logit_bias", "'logit_bias' must be an object mapping token ids to biases, not %s",
                   type_name(v));
    size_t n = json_object_size(v);
    if (n > SERVER_MAX_LOGIT_BIAS)
        return BAD(err, "logit_bias", "'logit_bias' has %zu entries; at most %d are allowed", n, SERVER_MAX_LOGIT_BIAS);
    if (n == 0) return true;
    if (!(r->logit_bias = calloc(n, sizeof *r->logit_bias))) return NO_MEMORY(err);
    const char *key;
    json_t *bias;
    size_t i = 0;
    json_object_foreach(v, key, bias) {
        char *end;
        long long token = strtoll(key, &end, 10);
        if (!*key || *end || token < 0 || token > INT32_MAX)
            return BAD(err, "logit_bias", "'logit_bias' keys must be token ids (integers >= 0), got '%.40s'", key);
        if (!json_is_number(bias) || !(json_number_value(bias) >= -100 && json_number_value(bias) <= 100))
            return BAD(err, "logit_bias", "'logit_bias'[\"%.40s\"] must be a number from -100 to 100", key);
        r->logit_bias[i++] = (pagoda_logit_bias){(int32_t)token, (float)json_number_value(bias)};
    }
    r->sampling.logit_bias = r->logit_bias;
    r->sampling.n_logit_bias = i;
    return true;
}

static bool parse_stop_token_ids(json_t *v, server_request *r, server_error *err) {
    if (!v || json_is_null(v)) return true;
    if (!json_is_array(v))
        return BAD(err, "stop_token_ids", "'stop_token_ids' must be an array of token ids, not %s", type_name(v));
    size_t n = json_array_size(v);
    if (n > SERVER_MAX_STOP_TOKEN_IDS)
        return BAD(err, "stop_token_ids", "'stop_token_ids' has %zu ids; at most %d are allowed", n,
                   SERVER_MAX_STOP_TOKEN_IDS);
    if (n == 0) return true;
    if (!(r->stop_token_ids = malloc(n * sizeof *r->stop_token_ids))) return NO_MEMORY(err);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(v, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return BAD(err, "stop_token_ids", "'stop_token_ids'[%zu] must be a token id (an integer >= 0)", i);
        r->stop_token_ids[i] = (int32_t)json_integer_value(t);
    }
    r->sampling.stop_token_ids = r->stop_token_ids;
    r->sampling.n_stop_token_ids = n;
    return true;
}

/* logprobs: chat takes a boolean plus top_logprobs 0..20; completions a count 0..5 */
static bool parse_logprobs(json_t *root, server_request *r, server_error *err) {
    pagoda_sampling_params *sp = &r->sampling;
    json_t *v = json_object_get(root, "logprobs");
    long long top = 0;
    bool given = false;
    if (r->kind == SERVER_REQ_CHAT) {
        if (!opt_bool(root, "logprobs", &sp->logprobs, err) ||
            !opt_int(root, "top_logprobs", 0, SERVER_MAX_TOP_LOGPROBS, &top, &given, err))
            return false;
        if (given && top > 0 && !sp->logprobs)
            return BAD(err, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        sp->top_logprobs = (int32_t)top;
        return true;
    }
    json_t *t = json_object_get(root, "top_logprobs");
    if (t && !json_is_null(t))
        return BAD(err, "top_logprobs", "'top_logprobs' is for chat completions; completions take 'logprobs': N");
    if (!v || json_is_null(v) || json_is_false(v)) return true;
    if (!opt_int(root, "logprobs", 0, SERVER_MAX_COMPLETION_LOGPROBS, &top, &given, err)) return false;
    sp->logprobs = true;
    sp->top_logprobs = (int32_t)top;
    return true;
}

bool server_request_parse_sampling(json_t *root, server_request *r, server_error *err) {
    pagoda_sampling_params *sp = &r->sampling;
    double presence = sp->presence_penalty, frequency = sp->frequency_penalty, repetition = sp->repetition_penalty,
           typical = sp->typical_p;
    if (!opt_number(root, "presence_penalty", -2, 2, false, &presence, err) ||
        !opt_number(root, "frequency_penalty", -2, 2, false, &frequency, err) ||
        !opt_number(root, "repetition_penalty", 0, 100, true, &repetition, err) ||
        !opt_number(root, "typical_p", 0, 1, true, &typical, err))
        return false;
    sp->presence_penalty = (float)presence;
    sp->frequency_penalty = (float)frequency;
    sp->repetition_penalty = (float)repetition;
    sp->typical_p = (float)typical;
    return parse_stop(json_object_get(root, "stop"), r, err) &&
           parse_logit_bias(json_object_get(root, "logit_bias"), r, err) &&
           parse_stop_token_ids(json_object_get(root, "stop_token_ids"), r, err) && parse_logprobs(root, r, err) &&
           parse_search(root, r, err);
}

/* ---- Sampling ------------------------------------------------------------------------------------- */
static bool parse_generation(json_t *root, server_request *r, server_error *err) {
    pagoda_sampling_params *sp = &r->sampling;
    /* OpenAI's defaults: temperature 1, top_p 1, no top_k / min_p; completions stop after 16 tokens */
    *sp = pagoda_sampling_params_default();
    sp->temperature = 1.0f;
    sp->top_p = 1.0f;
    sp->top_k = 0;
    sp->min_p = 0.0f;
    sp->n = 1;
    sp->max_tokens = r->kind == SERVER_REQ_COMPLETION ? 16 : -1;
    double temperature = sp->temperature, top_p = sp->top_p, min_p = sp->min_p;
    long long top_k = 0, n = 1, seed = 0, max_tokens = sp->max_tokens, priority = 0;
    bool given = false;
    if (!opt_bool(root, "stream", &r->stream, err) || !opt_number(root, "temperature", 0, 2, false, &temperature, err) ||
        !opt_number(root, "top_p", 0, 1, true, &top_p, err) || !opt_number(root, "min_p", 0, 1, false, &min_p, err) ||
        !opt_int(root, "top_k", -1, INT32_MAX, &top_k, NULL, err) ||
        !opt_int(root, "n", 1, SERVER_MAX_N, &n, NULL, err) ||
        !opt_int(root, "seed", INT64_MIN, INT64_MAX, &seed, &r->seed_given, err) ||
        !opt_int(root, "max_tokens", 1, 1 << 24, &max_tokens, NULL, err) ||
        !opt_int(root, "max_completion_tokens", 1, 1 << 24, &max_tokens, &given, err) ||
        !opt_int(root, "priority", INT32_MIN, INT32_MAX, &priority, NULL, err) ||
        !opt_bool(root, "ignore_eos", &sp->ignore_eos, err))
        return false;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return BAD(err, "stream_options", "'stream_options' must be an object, not %s", type_name(so));
        if (!r->stream)
            return BAD(err, "stream_options", "'stream_options' is only allowed when 'stream' is true");
        json_t *u = json_object_get(so, "include_usage");
        if (u && !json_is_null(u) && !json_is_boolean(u))
            return BAD(err, "stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
        r->include_usage = json_is_true(u);
    }
    if ((float)top_p <= 0) return BAD(err, "top_p", "'top_p' must be > 0 and <= 1, got %g", top_p);
    sp->temperature = (float)temperature;
    sp->top_p = (float)top_p;
    sp->min_p = (float)min_p;
    sp->top_k = top_k < 0 ? 0 : (int32_t)top_k;
    sp->n = (int32_t)n;
    sp->seed = (uint64_t)seed;
    sp->max_tokens = (int32_t)max_tokens;
    r->priority = (int32_t)priority;
    return check_unsupported(root, r->kind, n, err) && server_request_parse_sampling(root, r, err);
}

/* ---- Entry point ---------------------------------------------------------------------------------- */
static bool parse_object(json_t *root, server_request *r, server_error *err) {
    json_t *model = json_object_get(root, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) return BAD(err, "model", "'model' must be a string, not %s", type_name(model));
        if (!(r->model = strdup(json_string_value(model)))) return NO_MEMORY(err);
    }
    r->add_generation_prompt = true;
    switch (r->kind) {
    case SERVER_REQ_COMPLETION:
        return parse_prompt(json_object_get(root, "prompt"), r, err) && parse_generation(root, r, err);
    case SERVER_REQ_CHAT:
        return parse_messages(json_object_get(root, "messages"), r, err) &&
               opt_bool(root, "add_generation_prompt", &r->add_generation_prompt, err) &&
               parse_generation(root, r, err);
    case SERVER_REQ_TOKENIZE: {
        json_t *p = json_object_get(root, "prompt"), *m = json_object_get(root, "messages");
        bool ok;
        if (m && !json_is_null(m)) {
            r->add_special = false;
            ok = parse_messages(m, r, err) && opt_bool(root, "add_generation_prompt", &r->add_generation_prompt, err);
        } else {
            r->add_special = true;
            if (!json_is_string(p)) return BAD(err, "prompt", "give a string 'prompt' or a 'messages' array");
            ok = parse_prompt(p, r, err);
        }
        return ok && opt_bool(root, "add_special_tokens", &r->add_special, err);
    }
    case SERVER_REQ_DETOKENIZE: {
        json_t *t = json_object_get(root, "tokens");
        if (!json_is_array(t)) return BAD(err, "tokens", "'tokens' must be an array of token ids");
        return parse_ids(t, "tokens", r, err);
    }
    }
    return BAD(err, NULL, "unknown request kind");
}

bool server_request_parse(server_request_kind kind, const char *body, size_t len, server_request *out,
                          server_error *err) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (len == 0) return BAD(err, NULL, "the request body is empty: send a JSON object");
        return BAD(err, NULL, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    }
    bool ok = json_is_object(root) ? parse_object(root, out, err)
                                   : BAD(err, NULL, "the request body must be a JSON object, not %s", type_name(root));
    json_decref(root);
    if (!ok) {
        server_request_free(out);
        out->kind = kind;
    }
    return ok;
}

void server_request_free(server_request *r) {
    if (!r) return;
    free(r->model);
    free(r->prompt);
    free(r->ids);
    for (size_t i = 0; i < r->n_messages; i++) {
        free((char *)r->messages[i].role);
        free((char *)r->messages[i].content);
    }
    free(r->messages);
    for (size_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->dola_layers);
    free(r->logit_bias);
    free(r->stop_token_ids);
    memset(r, 0, sizeof *r);
}
