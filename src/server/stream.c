/* server/stream.c - OpenAI response bodies: the whole answer of a finished job, and the SSE stream
 * of a running one ("data: {chunk}\n\n" events ending with "data: [DONE]\n\n").
 *
 * The stream's reader runs on the connection's thread: it waits (in steps of 100 ms, looking for a
 * client that hung up) until the job has new text, then turns everything new into chunks: a text
 * delta per sample, a finish chunk per sample, then (stream_options.include_usage) a usage chunk.
 * A slow client therefore gets several steps' text in one chunk; nothing is dropped.
 *
 * Logprobs (when asked for) go with the text of the same tokens: chat as
 * {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]},
 * completions as {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}
 * (text_offset counts characters from the start of the completion).
 */
#include "server/server_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- JSON helpers ---------------------------------------------------------------------------------- */
/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one. */
static size_t utf8_char_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < len; i++) cp = (cp << 6) | (s[i] & 0x3F);
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

json_t *server_json_text(const char *s, size_t len) {
    size_t i = 0;
    const unsigned char *u = (const unsigned char *)s;
    while (i < len) { /* the common case: already valid (and no NUL) */
        size_t l = u[i] ? utf8_char_len(u + i, len - i) : 0;
        if (!l) break;
        i += l;
    }
    if (i == len) return json_stringn(s, len);
    server_buf b = {0};
    bool ok = server_buf_append(&b, s, i);
    while (ok && i < len) {
        size_t l = u[i] ? utf8_char_len(u + i, len - i) : 0;
        if (l) ok = server_buf_append(&b, s + i, l), i += l;
        else ok = server_buf_append(&b, "\xEF\xBF\xBD", 3), i++; /* U+FFFD */
    }
    json_t *out = ok ? json_stringn(b.data, b.len) : NULL;
    server_buf_free(&b);
    return out;
}

json_t *server_usage_json(const server_reply_info *info, server_job *job) {
    int64_t completion = 0;
    for (int32_t i = 0; i < job->n_samples; i++) completion += job->samples[i].n_tokens;
    return json_pack("{s:i, s:I, s:I, s:{s:i}}", "prompt_tokens", info->n_prompt, "completion_tokens",
                     (json_int_t)completion, "total_tokens", (json_int_t)(info->n_prompt + completion),
                     "prompt_tokens_details", "cached_tokens", job->n_cached);
}

/* ---- Logprobs -------------------------------------------------------------------------------------- */
/* A token's own bytes: decode([t, t]) minus decode([t]), which keeps a leading space that a
 * tokenizer drops at the start of a text. Malloc'd in *out (NULL when it cannot be decoded). */
static size_t token_bytes(server *srv, int32_t token, char **out) {
    int32_t pair[2] = {token, token};
    char *one = NULL, *two = NULL;
    size_t n_one = 0, n_two = 0;
    *out = NULL;
    if (pagoda_detokenize(srv->model, pair, 1, true, &one, &n_one) ||
        pagoda_detokenize(srv->model, pair, 2, true, &two, &n_two) || n_two < n_one) {
        free(one);
        free(two);
        return 0;
    }
    memmove(two, two + n_one, n_two - n_one);
    free(one);
    *out = two;
    return n_two - n_one;
}

static json_t *bytes_json(const char *b, size_t n) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_integer((unsigned char)b[i]));
    return arr;
}

static size_t utf8_chars(const char *b, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)b[i] & 0xC0) != 0x80;
    return c;
}

/* Chat: {"token", "logprob", "bytes"} of one token. */
static json_t *chat_token_json(server *srv, int32_t token, float logprob) {
    char *b;
    size_t n = token_bytes(srv, token, &b);
    json_t *o = json_pack("{s:o, s:f, s:o}", "token", server_json_text(b ? b : "", n), "logprob", (double)logprob,
                          "bytes", bytes_json(b, n));
    free(b);
    return o;
}

/* The logprobs of tokens [from, to) of a sample; *text_offset is the completion's running offset. */
static json_t *logprobs_json(server *srv, bool chat, const server_sample *sm, int32_t from, int32_t to,
                             size_t *text_offset) {
    if (chat) {
        json_t *content = json_array();
        for (int32_t i = from; i < to; i++) {
            const server_logprob *lp = &sm->logprobs[i];
            json_t *item = chat_token_json(srv, lp->token, lp->logprob), *top = json_array();
            for (int32_t k = 0; k < lp->n_top; k++)
                json_array_append_new(top, chat_token_json(srv, lp->top[k].token, lp->top[k].logprob));
            json_object_set_new(item, "top_logprobs", top);
            json_array_append_new(content, item);
        }
        return json_pack("{s:o}", "content", content);
    }
    json_t *tokens = json_array(), *token_logprobs = json_array(), *tops = json_array(), *offsets = json_array();
    for (int32_t i = from; i < to; i++) {
        const server_logprob *lp = &sm->logprobs[i];
        char *b;
        size_t n = token_bytes(srv, lp->token, &b);
        json_array_append_new(tokens, server_json_text(b ? b : "", n));
        json_array_append_new(token_logprobs, json_real(lp->logprob));
        json_array_append_new(offsets, json_integer((json_int_t)*text_offset));
        *text_offset += utf8_chars(b, n);
        free(b);
        json_t *top = json_object();
        for (int32_t k = 0; k < lp->n_top; k++) {
            size_t tn = token_bytes(srv, lp->top[k].token, &b);
            json_t *key = server_json_text(b ? b : "", tn);
            if (key && !json_object_get(top, json_string_value(key))) /* keys are unique: the likelier one wins */
                json_object_set_new(top, json_string_value(key), json_real(lp->top[k].logprob));
            json_decref(key);
            free(b);
        }
        json_array_append_new(tops, top);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", token_logprobs, "top_logprobs", tops,
                     "text_offset", offsets);
}

static bool wants_logprobs(const server_job *job) { return job->sampling.logprobs || job->sampling.top_logprobs > 0; }

static json_t *finish_json(server_finish f) {
    return f == SERVER_FINISH_NONE ? json_null() : json_string(server_finish_name(f));
}

json_t *server_reply_body(server *s, const server_reply_info *info, server_job *job) {
    bool chat = info->kind == SERVER_REQ_CHAT;
    json_t *choices = json_array();
    for (int32_t i = 0; i < job->n_samples; i++) {
        const server_sample *sm = &job->samples[i];
        json_t *text = server_json_text(sm->text.data ? sm->text.data : "", sm->text.len);
        size_t offset = 0;
        json_t *lp = wants_logprobs(job) ? logprobs_json(s, chat, sm, 0, sm->n_logprobs, &offset) : json_null();
        json_t *choice = chat ? json_pack("{s:i, s:{s:s, s:o}, s:o, s:o}", "index", i, "message", "role", "assistant",
                                          "content", text, "logprobs", lp, "finish_reason", finish_json(sm->finish))
                              : json_pack("{s:i, s:o, s:o, s:o}", "index", i, "text", text, "logprobs", lp,
                                          "finish_reason", finish_json(sm->finish));
        json_array_append_new(choices, choice);
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", info->id, "object",
                     chat ? "chat.completion" : "text_completion", "created", (json_int_t)info->created, "model",
                     s->model_name, "choices", choices, "usage", server_usage_json(info, job));
}

/* ---- The SSE stream -------------------------------------------------------------------------------- */
typedef struct server_stream {
    server *srv;
    server_conn *conn;    /* valid while the response is being sent */
    server_job *job;      /* own reference */
    server_reply_info info;
    size_t *sent;         /* [n_samples] bytes of text sent */
    int32_t *lp_sent;     /* [n_samples] logprobs sent */
    size_t *lp_offset;    /* [n_samples] completions: characters covered by the logprobs sent */
    bool *finish_sent;    /* [n_samples] */
    bool started, ended;  /* role chunks sent; [DONE] queued */
    uint64_t version;
    server_buf out;       /* bytes to send, from out_pos */
    size_t out_pos;
} server_stream;

/* Appends "data: <chunk>\n\n" for one choice (text delta with its logprobs, or finish), or for the
 * usage (index < 0). Steals logprobs and usage (either may be NULL). */
static bool emit_chunk(server_stream *st, int32_t index, const char *text, size_t len, bool role,
                       server_finish finish, json_t *logprobs, json_t *usage) {
    if (!logprobs) logprobs = json_null();
    bool chat = st->info.kind == SERVER_REQ_CHAT;
    json_t *choices = json_array();
    if (index >= 0) {
        json_t *choice;
        if (chat) {
            json_t *delta = json_object();
            if (role) json_object_set_new(delta, "role", json_string("assistant"));
            if (text) json_object_set_new(delta, "content", server_json_text(text, len));
            choice = json_pack("{s:i, s:o, s:o, s:o}", "index", index, "delta", delta, "logprobs", logprobs,
                               "finish_reason", finish_json(finish));
        } else {
            choice = json_pack("{s:i, s:o, s:o, s:o}", "index", index, "text", server_json_text(text ? text : "", len),
                               "logprobs", logprobs, "finish_reason", finish_json(finish));
        }
        json_array_append_new(choices, choice);
    } else {
        json_decref(logprobs);
    }
    json_t *chunk = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", st->info.id, "object",
                              chat ? "chat.completion.chunk" : "text_completion", "created",
                              (json_int_t)st->info.created, "model", st->srv->model_name, "choices", choices);
    if (chunk && st->info.include_usage) json_object_set_new(chunk, "usage", usage ? usage : json_null());
    else json_decref(usage);
    char *s = chunk ? json_dumps(chunk, JSON_COMPACT) : NULL;
    json_decref(chunk);
    bool ok = s && server_buf_puts(&st->out, "data: ") && server_buf_puts(&st->out, s) &&
              server_buf_puts(&st->out, "\n\n");
    free(s);
    return ok;
}

/* Everything new in the job since the last call, as events. Caller holds job->mu. */
static bool emit_new(server_stream *st) {
    server_job *job = st->job;
    bool ok = true;
    for (int32_t i = 0; i < job->n_samples && ok; i++) {
        server_sample *sm = &job->samples[i];
        bool new_logprobs = wants_logprobs(job) && sm->n_logprobs > st->lp_sent[i];
        if (sm->text.len > st->sent[i] || new_logprobs) {
            json_t *lp = new_logprobs ? logprobs_json(st->srv, st->info.kind == SERVER_REQ_CHAT, sm, st->lp_sent[i],
                                                      sm->n_logprobs, &st->lp_offset[i])
                                      : NULL;
            ok = emit_chunk(st, i, sm->text.data ? sm->text.data + st->sent[i] : "", sm->text.len - st->sent[i], false,
                            SERVER_FINISH_NONE, lp, NULL);
            st->sent[i] = sm->text.len;
            st->lp_sent[i] = sm->n_logprobs;
        }
        if (ok && sm->finish != SERVER_FINISH_NONE && sm->finish != SERVER_FINISH_ERROR && !st->finish_sent[i]) {
            ok = emit_chunk(st, i, st->info.kind == SERVER_REQ_CHAT ? NULL : "", 0, false, sm->finish, NULL, NULL);
            st->finish_sent[i] = true;
        }
    }
    if (ok && job->done) {
        if (job->error_http) {
            server_error e;
            server_error_set(&e, job->error_http, job->error_http >= 500 ? "server_error" : "invalid_request_error",
                             NULL, NULL, "%s", job->error);
            json_t *body = server_error_json(&e);
            char *s = json_dumps(body, JSON_COMPACT);
            json_decref(body);
            ok = s && server_buf_printf(&st->out, "data: %s\n\n", s);
            free(s);
        }
        if (ok && st->info.include_usage) ok = emit_chunk(st, -1, NULL, 0, false, SERVER_FINISH_NONE, NULL,
                                                          server_usage_json(&st->info, job));
        ok = ok && server_buf_puts(&st->out, "data: [DONE]\n\n");
        st->ended = true;
    }
    return ok;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    server_stream *st = cls;
    while (st->out_pos == st->out.len) {
        server_buf_clear(&st->out);
        st->out_pos = 0;
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        bool ok = true;
        if (!st->started) { /* the role first (chat), so the client sees the stream open at once */
            st->started = true;
            for (int32_t i = 0; i < st->job->n_samples && ok && st->info.kind == SERVER_REQ_CHAT; i++)
                ok = emit_chunk(st, i, "", 0, true, SERVER_FINISH_NONE, NULL, NULL);
            if (!ok) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (st->info.kind == SERVER_REQ_CHAT) continue;
        }
        server_job_wait_locked(st->job, &st->version, 0.1);
        ok = ok && emit_new(st);
        pthread_mutex_unlock(&st->job->mu);
        if (!ok) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (st->out.len == 0 && server_client_gone(st->conn)) {
            server_engine_cancel(st->srv->engine, st->job); /* the client left: free its KV blocks now */
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = st->out.len - st->out_pos;
    if (n > max) n = max;
    memcpy(buf, st->out.data + st->out_pos, n);
    st->out_pos += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    server_stream *st = cls;
    pthread_mutex_lock(&st->job->mu);
    bool done = st->job->done;
    pthread_mutex_unlock(&st->job->mu);
    if (!done) server_engine_cancel(st->srv->engine, st->job);
    server_job_release(st->job);
    server_buf_free(&st->out);
    free(st->sent);
    free(st->finish_sent);
    free(st->lp_sent);
    free(st->lp_offset);
    free(st);
}

struct MHD_Response *server_stream_response(server_conn *c, const server_reply_info *info, server_job *job) {
    server_stream *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->srv = c->srv;
    st->conn = c;
    st->info = *info;
    st->sent = calloc((size_t)job->n_samples, sizeof *st->sent);
    st->finish_sent = calloc((size_t)job->n_samples, sizeof *st->finish_sent);
    st->lp_sent = calloc((size_t)job->n_samples, sizeof *st->lp_sent);
    st->lp_offset = calloc((size_t)job->n_samples, sizeof *st->lp_offset);
    if (!st->sent || !st->finish_sent || !st->lp_sent || !st->lp_offset) {
        free(st->sent);
        free(st->finish_sent);
        free(st->lp_sent);
        free(st->lp_offset);
        free(st);
        return NULL;
    }
    pthread_mutex_lock(&job->mu);
    job->refs++;
    pthread_mutex_unlock(&job->mu);
    st->job = job;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    server_add_common_headers(c, r);
    return r;
}
