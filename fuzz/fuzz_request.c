/* fuzz/fuzz_request.c - libFuzzer target for the server's request parsing: the first byte picks the
 * route (completions, chat, tokenize, detokenize), the rest is the body given to
 * server_request_parse(). Every parsed field is touched, so ASan/UBSan see bad pointers or sizes,
 * and the invariants are checked: an error has a 4xx/5xx status and a message; a parsed request has
 * exactly one kind of prompt, sane sampling values, and non-empty stop strings. When there are stop
 * strings, the prompt text is streamed through the engine's stop_text_feed in pieces cut by the
 * input itself, and the released text must be a prefix of the prompt holding no stop string.
 *   make fuzz && build-fuzz/fuzz/fuzz_request -max_total_time=60 corpus/ tests/fixtures/server/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h" /* defines: server_request_parse, server_request_free */
#include "engine/stop_text.h" /* defines: stop_text_feed, stop_text_flush */

static volatile uint64_t sink;

static void check_stop(const server_request *r, const uint8_t *cuts, size_t n_cuts) {
    if (!r->prompt || r->n_stop == 0) return;
    stop_text s;
    stop_text_init(&s, r->stop, r->n_stop);
    char *out = malloc(r->prompt_len + 1);
    size_t n_out = 0, at = 0, c = 0;
    if (!out) abort();
    while (at < r->prompt_len) {
        size_t piece = 1 + (n_cuts ? (size_t)(cuts[c++ % n_cuts] % 8) : 2);
        if (piece > r->prompt_len - at) piece = r->prompt_len - at;
        if (!stop_text_feed(&s, r->prompt + at, piece)) abort();
        if (n_out + s.n_out > r->prompt_len) abort();
        if (s.n_out) memcpy(out + n_out, s.out, s.n_out);
        n_out += s.n_out;
        at += piece;
    }
    if (!s.matched) {
        if (!stop_text_flush(&s)) abort();
        if (n_out + s.n_out > r->prompt_len) abort();
        if (s.n_out) memcpy(out + n_out, s.out, s.n_out);
        n_out += s.n_out;
    }
    if (n_out && memcmp(out, r->prompt, n_out)) abort();
    for (size_t i = 0; i < r->n_stop && n_out; i++)
        if (memmem(out, n_out, r->stop[i], strlen(r->stop[i]))) abort();
    if (!s.matched && n_out != r->prompt_len) abort();
    free(out);
    stop_text_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    server_request_kind kind = (server_request_kind)(data[0] % 4);
    server_request r;
    server_error err;
    if (!server_request_parse(kind, (const char *)data + 1, size - 1, &r, &err)) {
        if (err.http_status < 400 || err.http_status > 599 || !err.message[0]) abort();
        sink += strlen(err.message) + strlen(err.param);
        return 0;
    }
    uint64_t sum = 0;
    if (r.model) sum += strlen(r.model);
    if (r.prompt) sum += r.prompt_len + (uint8_t)r.prompt[r.prompt_len]; /* the NUL is there */
    for (size_t i = 0; i < r.n_ids; i++) sum += (uint32_t)r.ids[i];
    for (size_t i = 0; i < r.n_messages; i++) sum += strlen(r.messages[i].role) + strlen(r.messages[i].content);
    for (size_t i = 0; i < r.n_stop; i++)
        if (!r.stop[i][0]) abort();
    int n_prompts = (r.prompt != NULL) + r.has_ids + (r.n_messages > 0);
    if (n_prompts != 1) abort();
    if (kind == SERVER_REQ_COMPLETION || kind == SERVER_REQ_CHAT) {
        const pagoda_sampling_params *sp = &r.sampling;
        if (!(sp->temperature >= 0 && sp->temperature <= 2) || !(sp->top_p > 0 && sp->top_p <= 1) ||
            !(sp->min_p >= 0 && sp->min_p <= 1) || sp->top_k < 0 || sp->n < 1 || sp->n > SERVER_MAX_N ||
            sp->max_tokens == 0 || sp->max_tokens < -1)
            abort();
        if (r.include_usage && !r.stream) abort();
    }
    check_stop(&r, data, size > 16 ? 16 : size);
    sink += sum;
    server_request_free(&r);
    return 0;
}
