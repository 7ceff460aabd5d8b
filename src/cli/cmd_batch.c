/* cli/cmd_batch.c - `pagoda batch`: offline batch inference. Reads one JSON request per line, submits
 * them all to the engine at once, shows a progress bar, writes one JSON result per line (in input
 * order) and a throughput summary. A bad line gets an error record; the others still run.
 *
 * Request line: {"id": any (default: the line number), "prompt": "..." | "messages": [{"role",
 *   "content"}...], "max_tokens", "temperature", "top_k", "top_p", "min_p", "seed", "n",
 *   "ignore_eos", "priority", and the HTTP API's names for the rest of the sampler chain (parsed
 *   by server_request_parse_sampling): "stop", "stop_token_ids", "presence_penalty",
 *   "frequency_penalty", "repetition_penalty", "typical_p", "logit_bias", "logprobs" (a count
 *   0..5 with "prompt", a boolean plus "top_logprobs" 0..20 with "messages"), and the search
 *   strategies' "num_beams", "length_penalty", "early_stopping", "penalty_alpha", "dola_layers"}
 * Result line:  {"id", "text", "token_ids", "finish_reason", "usage": {"prompt_tokens",
 *   "completion_tokens", "cached_tokens"}} (+ "logprobs": [{"token", "logprob", "top_logprobs":
 *   [{"token", "logprob"}]}] when asked, + "samples": [...] when n > 1), or {"id", "error": {...}}.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_common.h" /* defines: cli_options, cli_load_model */
#include "cli/commands.h"
#include "server/request.h" /* defines: server_request_parse_sampling */

static void print_help(FILE *out) {
    fprintf(out,
            "usage: pagoda batch [-m MODEL] -i requests.jsonl -o results.jsonl [options]\n\n"
            "Runs every request of a JSONL file together through the batching engine.\n"
            "Each input line: {\"id\": ..., \"prompt\": \"...\"} or {\"messages\": [{\"role\": \"user\",\n"
            "\"content\": \"...\"}]}, with optional max_tokens, temperature, top_k, top_p, min_p, seed,\n"
            "n, ignore_eos, priority (defaults from the options below) and, named as in the HTTP API,\n"
            "stop, stop_token_ids, presence_penalty, frequency_penalty, repetition_penalty,\n"
            "typical_p, logit_bias, logprobs, top_logprobs. Each output line: id, text, token_ids,\n"
            "finish_reason, usage (and logprobs when asked); a bad line gets {\"id\", \"error\"} and the\n"
            "rest still run.\n\n"
            "  -i, --input FILE        requests, one JSON object a line ('-' for stdin)\n"
            "  -o, --output FILE       results, one JSON object a line ('-' for stdout)\n"
            "      --no-progress       no progress bar\n");
    cli_print_common_help(out);
    fprintf(out, "  -h, --help              show this help\n");
}

typedef struct sample_result {
    int32_t *ids;
    size_t n_ids, cap_ids;
    char *text;
    size_t text_len, text_cap;
    pagoda_finish_reason reason;
    bool finished;
    json_t *logprobs;        /* array, when the request asked for logprobs */
} sample_result;

typedef struct batch_item {
    json_t *id;              /* owned */
    char *error;             /* a line that could not be submitted */
    pagoda_request_id request;
    int32_t n_samples;
    sample_result *samples;  /* [n_samples] */
    int32_t n_prompt, n_cached, n_finished;
    bool logprobs;           /* the request asked for logprobs */
    const char *failure;     /* set by a sample that finished with an error (copied) */
    char *failure_copy;
} batch_item;

static bool append_ids(sample_result *r, const int32_t *ids, size_t n) {
    if (r->n_ids + n > r->cap_ids) {
        size_t cap = (r->n_ids + n) * 2 + 16;
        int32_t *grown = realloc(r->ids, cap * sizeof *grown);
        if (!grown) return false;
        r->ids = grown;
        r->cap_ids = cap;
    }
    memcpy(r->ids + r->n_ids, ids, n * sizeof *ids);
    r->n_ids += n;
    return true;
}

static bool append_text(sample_result *r, const char *text, size_t n) {
    if (r->text_len + n + 1 > r->text_cap) {
        size_t cap = (r->text_len + n + 1) * 2 + 64;
        char *grown = realloc(r->text, cap);
        if (!grown) return false;
        r->text = grown;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_len, text, n);
    r->text_len += n;
    r->text[r->text_len] = '\0';
    return true;
}

static const char *reason_name(pagoda_finish_reason r) {
    switch (r) {
    case PAGODA_FINISH_STOP: return "stop";
    case PAGODA_FINISH_LENGTH: return "length";
    case PAGODA_FINISH_CANCELLED: return "cancelled";
    case PAGODA_FINISH_ERROR: return "error";
    }
    return "unknown";
}

/* Reads a number field into *out if present; false (with *why set) if present but not a number. */
static bool get_number(json_t *obj, const char *key, double *out, const char **why) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) {
        *why = key;
        return false;
    }
    *out = json_number_value(v);
    return true;
}

/* Turns one parsed line into a request; returns an error message (malloc'd) or NULL. */
static char *submit(pagoda_model *m, json_t *obj, const cli_options *o, batch_item *item) {
    char buf[512];
    if (!json_is_object(obj)) return strdup("each line must be a JSON object");
    json_t *prompt = json_object_get(obj, "prompt"), *messages = json_object_get(obj, "messages");
    char *text = NULL;
    bool chat = false;
    if (prompt && json_is_string(prompt) && !messages) {
        text = strdup(json_string_value(prompt));
    } else if (messages && json_is_array(messages) && !prompt) {
        size_t n = json_array_size(messages);
        if (n == 0) return strdup("'messages' is empty");
        pagoda_chat_message *msgs = calloc(n, sizeof *msgs);
        if (!msgs) return strdup("out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *msg = json_array_get(messages, i);
            json_t *role = json_object_get(msg, "role"), *content = json_object_get(msg, "content");
            if (!json_is_string(role) || !json_is_string(content)) {
                free(msgs);
                snprintf(buf, sizeof buf, "messages[%zu] needs string 'role' and 'content'", i);
                return strdup(buf);
            }
            msgs[i] = (pagoda_chat_message){json_string_value(role), json_string_value(content)};
        }
        pagoda_status st = pagoda_chat_render(m, msgs, n, true, &text);
        free(msgs);
        if (st) return strdup(pagoda_last_error());
        chat = true;
    } else {
        return strdup("give either a string 'prompt' or a 'messages' array");
    }
    if (!text) return strdup("out of memory");
    pagoda_sampling_params sp = o->sampling;
    double v;
    const char *why = NULL;
    double max_tokens = sp.max_tokens, temperature = sp.temperature, top_k = sp.top_k, top_p = sp.top_p,
           min_p = sp.min_p, seed = (double)sp.seed, n = 1, priority = 0;
    bool ok = get_number(obj, "max_tokens", &max_tokens, &why) && get_number(obj, "temperature", &temperature, &why) &&
              get_number(obj, "top_k", &top_k, &why) && get_number(obj, "top_p", &top_p, &why) &&
              get_number(obj, "min_p", &min_p, &why) && get_number(obj, "seed", &seed, &why) &&
              get_number(obj, "n", &n, &why) && get_number(obj, "priority", &priority, &why);
    (void)v;
    if (!ok) {
        free(text);
        snprintf(buf, sizeof buf, "'%s' must be a number", why);
        return strdup(buf);
    }
    if (n < 1 || n > 64 || max_tokens < -1 || max_tokens > 1e9 || top_k < 0 || top_k > 1e9 || seed < 0) {
        free(text);
        return strdup("out-of-range value: need 1 <= n <= 64, max_tokens >= -1, top_k >= 0, seed >= 0");
    }
    json_t *ignore = json_object_get(obj, "ignore_eos");
    if (ignore && json_is_boolean(ignore)) sp.ignore_eos = json_is_true(ignore);
    sp.max_tokens = (int32_t)max_tokens;
    sp.temperature = (float)temperature;
    sp.top_k = (int32_t)top_k;
    sp.top_p = (float)top_p;
    sp.min_p = (float)min_p;
    sp.seed = (uint64_t)seed;
    sp.n = (int32_t)n;
    server_request extras = {.kind = chat ? SERVER_REQ_CHAT : SERVER_REQ_COMPLETION, .sampling = sp};
    server_error err;
    if (!server_request_parse_sampling(obj, &extras, &err)) {
        free(text);
        server_request_free(&extras);
        return strdup(err.message);
    }
    sp = extras.sampling; /* its arrays live in extras until the request is added (which copies them) */
    int32_t *ids = NULL;
    size_t n_ids = 0;
    /* a raw prompt gets BOS as the model wants it; a rendered chat already has its special tokens */
    pagoda_status st = pagoda_tokenize(m, text, strlen(text), !chat, true, &ids, &n_ids);
    free(text);
    if (!st) st = pagoda_add_request(m, ids, n_ids, &sp, (int32_t)priority, &item->request);
    free(ids);
    server_request_free(&extras);
    if (st) return strdup(pagoda_last_error());
    item->logprobs = sp.logprobs || sp.top_logprobs > 0;
    item->n_samples = sp.n;
    item->n_prompt = (int32_t)n_ids;
    item->samples = calloc((size_t)sp.n, sizeof *item->samples);
    if (!item->samples) {
        pagoda_abort(m, item->request);
        return strdup("out of memory");
    }
    return NULL;
}

static json_t *sample_json(const sample_result *r) {
    json_t *ids = json_array();
    for (size_t i = 0; i < r->n_ids; i++) json_array_append_new(ids, json_integer(r->ids[i]));
    json_t *out = json_pack("{s:s%, s:o, s:s}", "text", r->text ? r->text : "", r->text ? r->text_len : (size_t)0,
                            "token_ids", ids, "finish_reason", reason_name(r->reason));
    if (out && r->logprobs) json_object_set(out, "logprobs", r->logprobs);
    return out;
}

/* One output's logprobs appended to the sample's array. */
static void append_logprobs(sample_result *r, const pagoda_output *po) {
    if (!po->logprobs) return;
    if (!r->logprobs) r->logprobs = json_array();
    for (size_t t = 0; t < po->n_tokens; t++) {
        const pagoda_token_logprob *lp = &po->logprobs[t];
        json_t *top = json_array();
        for (int32_t k = 0; k < lp->n_top; k++)
            json_array_append_new(top, json_pack("{s:i, s:f}", "token", lp->top[k].token, "logprob",
                                                 (double)lp->top[k].logprob));
        json_array_append_new(r->logprobs, json_pack("{s:i, s:f, s:o}", "token", lp->token, "logprob",
                                                     (double)lp->logprob, "top_logprobs", top));
    }
}

static json_t *result_json(const batch_item *item) {
    if (item->error || item->failure_copy)
        return json_pack("{s:O, s:{s:s}}", "id", item->id, "error", "message",
                         item->error ? item->error : item->failure_copy);
    int32_t completion = 0;
    for (int32_t s = 0; s < item->n_samples; s++) completion += (int32_t)item->samples[s].n_ids;
    json_t *out = sample_json(&item->samples[0]);
    json_object_set(out, "id", item->id);
    json_object_set_new(out, "usage", json_pack("{s:i, s:i, s:i}", "prompt_tokens", item->n_prompt,
                                                "completion_tokens", completion, "cached_tokens", item->n_cached));
    if (item->n_samples > 1) {
        json_t *samples = json_array();
        for (int32_t s = 0; s < item->n_samples; s++) {
            json_t *one = sample_json(&item->samples[s]);
            json_object_set_new(one, "index", json_integer(s));
            json_array_append_new(samples, one);
        }
        json_object_set_new(out, "samples", samples);
    }
    return out;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void draw_progress(int32_t done, int32_t total, uint64_t tokens, double seconds) {
    int width = 30, filled = total ? (int)((int64_t)width * done / total) : width;
    fprintf(stderr, "\r[%.*s%*s] %d/%d requests, %llu tokens, %.1f tok/s ", filled,
            "##############################", width - filled, "", done, total, (unsigned long long)tokens,
            seconds > 0 ? (double)tokens / seconds : 0.0);
}

int cmd_batch(int argc, char **argv) {
    enum { OPT_NO_PROGRESS = 2000 };
    static const struct option own[] = {{"input", required_argument, 0, 'i'}, {"output", required_argument, 0, 'o'},
                                         {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    struct option options[64];
    cli_merge_long_options(own, options, 64);
    cli_options o;
    cli_options_init(&o, 256);
    o.announce_kv = true;
    const char *in_path = NULL, *out_path = NULL;
    bool progress = isatty(STDERR_FILENO);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:h" CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1) {
        int handled = cli_handle_common_option(&o, c, optarg, "batch");
        if (handled < 0) return 2;
        if (handled) continue;
        switch (c) {
        case 'i': in_path = optarg; break;
        case 'o': out_path = optarg; break;
        case OPT_NO_PROGRESS: progress = false; break;
        case 'h': print_help(stdout); return 0;
        default: fprintf(stderr, "see pagoda batch --help\n"); return 2;
        }
    }
    if (!in_path || !out_path || optind < argc) {
        fprintf(stderr, "pagoda batch: give -i requests.jsonl and -o results.jsonl (see pagoda batch --help)\n");
        return 2;
    }
    FILE *in = strcmp(in_path, "-") ? fopen(in_path, "r") : stdin;
    if (!in) {
        fprintf(stderr, "pagoda batch: cannot open '%s'\n", in_path);
        return 1;
    }
    FILE *out = strcmp(out_path, "-") ? fopen(out_path, "w") : stdout;
    if (!out) {
        fprintf(stderr, "pagoda batch: cannot write '%s'\n", out_path);
        if (in != stdin) fclose(in);
        return 1;
    }
    if (!o.seed_given) o.sampling.seed = 0; /* reproducible batches unless asked otherwise */
    o.seed_given = true;
    pagoda_model *m = cli_load_model(&o, "batch");
    if (!m) {
        if (in != stdin) fclose(in);
        if (out != stdout) fclose(out);
        return 1;
    }
    /* read and submit every line */
    batch_item *items = NULL;
    int32_t n_items = 0, cap_items = 0, n_errors = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    for (int64_t line_no = 1; (len = getline(&line, &line_cap, in)) >= 0; line_no++) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        if (n_items == cap_items) {
            cap_items = cap_items ? cap_items * 2 : 64;
            batch_item *grown = realloc(items, (size_t)cap_items * sizeof *grown);
            if (!grown) break;
            items = grown;
        }
        batch_item *item = &items[n_items++];
        memset(item, 0, sizeof *item);
        json_error_t jerr;
        json_t *obj = json_loadb(line, (size_t)len, 0, &jerr);
        json_t *id = obj && json_is_object(obj) ? json_object_get(obj, "id") : NULL;
        item->id = id ? json_incref(id) : json_integer(line_no);
        if (!obj) {
            char buf[400];
            snprintf(buf, sizeof buf, "line %lld: invalid JSON at column %d: %s", (long long)line_no, jerr.column,
                     jerr.text);
            item->error = strdup(buf);
        } else {
            item->error = submit(m, obj, &o, item);
        }
        if (item->error) n_errors++;
        json_decref(obj);
    }
    free(line);
    if (in != stdin) fclose(in);

    /* run until every request finishes */
    double t0 = now_seconds();
    int32_t n_done = n_errors;
    uint64_t n_tokens = 0;
    int rc = 0;
    while (pagoda_has_unfinished(m)) {
        const pagoda_output *outs;
        size_t n_outs;
        if (pagoda_step(m, &outs, &n_outs) != PAGODA_OK) {
            fprintf(stderr, "\npagoda batch: %s\n", pagoda_last_error());
            rc = 1;
        }
        for (size_t i = 0; i < n_outs; i++) {
            const pagoda_output *po = &outs[i];
            batch_item *item = NULL;
            for (int32_t k = 0; k < n_items && !item; k++) /* TODO(issue 4): a map when thousands run */
                if (!items[k].error && items[k].request == po->id) item = &items[k];
            if (!item || po->index >= item->n_samples) continue;
            sample_result *r = &item->samples[po->index];
            append_ids(r, po->tokens, po->n_tokens);
            append_text(r, po->text, po->text_len);
            append_logprobs(r, po);
            n_tokens += po->n_tokens;
            item->n_cached = po->n_cached_tokens;
            if (po->finished && !r->finished) {
                r->finished = true;
                r->reason = po->finish_reason;
                if (po->finish_reason == PAGODA_FINISH_ERROR && !item->failure_copy)
                    item->failure_copy = strdup(po->error_message ? po->error_message : "failed");
                if (++item->n_finished == item->n_samples) n_done++;
            }
        }
        if (progress) draw_progress(n_done, n_items, n_tokens, now_seconds() - t0);
    }
    double seconds = now_seconds() - t0;
    if (progress) {
        draw_progress(n_done, n_items, n_tokens, seconds);
        fputc('\n', stderr);
    }
    for (int32_t k = 0; k < n_items; k++) {
        json_t *res = result_json(&items[k]);
        char *text = res ? json_dumps(res, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (text) fprintf(out, "%s\n", text);
        free(text);
        json_decref(res);
    }
    pagoda_engine_stats stats;
    pagoda_get_stats(m, &stats);
    fprintf(stderr, "pagoda batch: %d requests (%d failed) in %.2f s: %llu prompt tokens, %llu generated tokens, "
                    "%.1f generated tok/s, %.1f total tok/s; prefix cache hits %llu of %llu tokens; %llu preemptions\n",
            n_items, n_errors, seconds, (unsigned long long)stats.prompt_tokens,
            (unsigned long long)stats.generated_tokens, seconds > 0 ? (double)stats.generated_tokens / seconds : 0.0,
            seconds > 0 ? (double)(stats.computed_tokens + stats.generated_tokens) / seconds : 0.0,
            (unsigned long long)stats.prefix_hits, (unsigned long long)stats.prefix_queries,
            (unsigned long long)stats.n_preemptions);
    for (int32_t k = 0; k < n_items; k++) {
        json_decref(items[k].id);
        free(items[k].error);
        free(items[k].failure_copy);
        for (int32_t s = 0; s < items[k].n_samples; s++) {
            free(items[k].samples[s].ids);
            free(items[k].samples[s].text);
            json_decref(items[k].samples[s].logprobs);
        }
        free(items[k].samples);
    }
    free(items);
    if (out != stdout && fclose(out) != 0) {
        fprintf(stderr, "pagoda batch: error writing '%s'\n", out_path);
        rc = 1;
    }
    pagoda_model_free(m);
    return rc;
}
