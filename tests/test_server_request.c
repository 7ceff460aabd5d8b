/* tests/test_server_request.c - request parsing and validation (server/request.h): a table of
 * bodies with the status and parameter OpenAI's and vLLM's documentation give for them (written by
 * hand from those specifications), and the parsed values of good requests. */
#include <stdio.h>
#include <string.h>

#include "server/request.h" /* defines: server_request_parse */
#include "testlib.h"

typedef struct bad_case {
    server_request_kind kind;
    const char *body;
    int status;
    const char *param; /* "" for none */
    const char *in_message;
} bad_case;

static const bad_case bad[] = {
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\",}", 400, "", "line 1, column 16"},
    {SERVER_REQ_COMPLETION, "{\n\"prompt\": }", 400, "", "line 2"},
    {SERVER_REQ_COMPLETION, "", 400, "", "empty"},
    {SERVER_REQ_COMPLETION, "[]", 400, "", "JSON object"},
    {SERVER_REQ_COMPLETION, "{}", 400, "prompt", "required"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": true}", 400, "prompt", "string"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": []}", 400, "prompt", "empty"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": [\"a\", \"b\"]}", 400, "prompt", "not supported yet"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": [1, \"b\"]}", 400, "prompt", "token id"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"max_tokens\": -1}", 400, "max_tokens", "between"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"max_completion_tokens\": \"5\"}", 400, "max_completion_tokens", "integer"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"temperature\": 2.5}", 400, "temperature", "<= 2"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"top_p\": 0}", 400, "top_p", "> 0"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"top_p\": 1e-60}", 400, "top_p", "> 0"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"n\": 1.5}", 400, "n", "integer"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"ignore_eos\": 1}", 400, "ignore_eos", "boolean"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"stop\": [1]}", 400, "stop", "string"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"stream\": false, \"stream_options\": {}}", 400, "stream_options", "only allowed"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"stream\": true, \"stream_options\": {\"include_usage\": 1}}", 400, "stream_options.include_usage", "boolean"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"logprobs\": 6}", 400, "logprobs", "between 0 and 5"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"logprobs\": true}", 400, "logprobs", "integer"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"top_logprobs\": 1}", 400, "top_logprobs", "chat"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": 1}", 400, "logprobs", "boolean"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true, \"top_logprobs\": 21}", 400, "top_logprobs", "between 0 and 20"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_logprobs\": 3}", 400, "top_logprobs", "logprobs"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"frequency_penalty\": -2.5}", 400, "frequency_penalty", ">= -2"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"presence_penalty\": \"a\"}", 400, "presence_penalty", "number"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"repetition_penalty\": 0}", 400, "repetition_penalty", "> 0"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"typical_p\": 1.01}", 400, "typical_p", "<= 1"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"logit_bias\": {\"1\": 101}}", 400, "logit_bias", "-100 to 100"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"logit_bias\": {\"-1\": 1}}", 400, "logit_bias", "token ids"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"logit_bias\": {\"1x\": 1}}", 400, "logit_bias", "token ids"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"logit_bias\": [1]}", 400, "logit_bias", "object"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"stop_token_ids\": [1, -2]}", 400, "stop_token_ids", "token id"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"stop_token_ids\": 5}", 400, "stop_token_ids", "array"},
    {SERVER_REQ_COMPLETION, "{\"prompt\": \"x\", \"best_of\": 2}", 400, "best_of", "not supported yet"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tool_choice\": \"required\"}", 400, "tool_choice", "not supported yet"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_schema\"}}", 400, "response_format", "not supported yet"},
    {SERVER_REQ_CHAT, "{\"messages\": {}}", 400, "messages", "array"},
    {SERVER_REQ_CHAT, "{\"messages\": [1]}", 400, "messages", "object"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"content\": \"x\"}]}", 400, "messages[0].role", "string"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"function\", \"content\": \"x\"}]}", 400, "messages[0].role", "not supported yet"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]}", 400, "messages[0].content", "text"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{}]}]}", 400, "messages", "tool_calls"},
    {SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"model\": []}", 400, "model", "string"},
    {SERVER_REQ_DETOKENIZE, "{\"tokens\": \"1 2\"}", 400, "tokens", "array"},
    {SERVER_REQ_DETOKENIZE, "{\"tokens\": [1, 3000000000]}", 400, "tokens", "token id"},
    {SERVER_REQ_TOKENIZE, "{\"prompt\": [1, 2]}", 400, "prompt", "string"},
};

int main(void) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        server_request r;
        server_error e;
        bool ok = server_request_parse(bad[i].kind, bad[i].body, strlen(bad[i].body), &r, &e);
        CHECK_MSG(!ok && e.http_status == bad[i].status && !strcmp(e.param, bad[i].param) &&
                      strstr(e.message, bad[i].in_message),
                  "case %zu %s: ok %d status %d param '%s' message '%s'", i, bad[i].body, ok, ok ? 0 : e.http_status,
                  ok ? "" : e.param, ok ? "" : e.message);
        if (ok) server_request_free(&r);
    }
    server_request r;
    server_error e;
    /* a completion with every supported option; neutral values of unsupported ones are accepted */
    const char *full = "{\"model\": \"m\", \"prompt\": \"Hi\", \"max_tokens\": 7, \"temperature\": 0.5, \"top_p\": 0.9,"
                       " \"top_k\": -1, \"min_p\": 0.1, \"n\": 3, \"seed\": -5, \"stop\": \"\\n\", \"ignore_eos\": true,"
                       " \"priority\": 2, \"stream\": true, \"stream_options\": {\"include_usage\": true},"
                       " \"presence_penalty\": 0, \"logprobs\": null, \"echo\": false, \"logit_bias\": {}, \"user\": \"u\"}";
    CHECK(server_request_parse(SERVER_REQ_COMPLETION, full, strlen(full), &r, &e));
    CHECK(r.model && !strcmp(r.model, "m") && r.prompt && !strcmp(r.prompt, "Hi") && r.prompt_len == 2 && !r.has_ids);
    CHECK(r.sampling.max_tokens == 7 && r.sampling.temperature == 0.5f && r.sampling.top_p == 0.9f &&
          r.sampling.top_k == 0 && r.sampling.min_p == 0.1f && r.sampling.n == 3 && r.sampling.ignore_eos);
    CHECK(r.seed_given && r.sampling.seed == (uint64_t)-5 && r.priority == 2 && r.stream && r.include_usage);
    CHECK(r.n_stop == 1 && !strcmp(r.stop[0], "\n"));
    server_request_free(&r);
    /* the sampler chain's fields */
    const char *chain = "{\"prompt\": \"Hi\", \"presence_penalty\": 1.5, \"frequency_penalty\": -0.5,"
                        " \"repetition_penalty\": 1.3, \"typical_p\": 0.9, \"logit_bias\": {\"7\": -100, \"12\": 2.5},"
                        " \"stop_token_ids\": [3, 4], \"logprobs\": 3, \"stop\": [\"a\", \"bc\"]}";
    CHECK(server_request_parse(SERVER_REQ_COMPLETION, chain, strlen(chain), &r, &e));
    CHECK(r.sampling.presence_penalty == 1.5f && r.sampling.frequency_penalty == -0.5f &&
          r.sampling.repetition_penalty == 1.3f && r.sampling.typical_p == 0.9f);
    CHECK(r.sampling.n_logit_bias == 2 && r.sampling.logit_bias[0].token == 7 && r.sampling.logit_bias[0].bias == -100 &&
          r.sampling.logit_bias[1].token == 12 && r.sampling.logit_bias[1].bias == 2.5f);
    CHECK(r.sampling.n_stop_token_ids == 2 && r.sampling.stop_token_ids[1] == 4);
    CHECK(r.sampling.logprobs && r.sampling.top_logprobs == 3);
    CHECK(r.sampling.n_stop == 2 && !strcmp(r.sampling.stop[1], "bc"));
    server_request_free(&r);
    const char *chat_lp = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true, \"top_logprobs\": 20}";
    CHECK(server_request_parse(SERVER_REQ_CHAT, chat_lp, strlen(chat_lp), &r, &e));
    CHECK(r.sampling.logprobs && r.sampling.top_logprobs == 20);
    server_request_free(&r);
    /* defaults: the chain's extras off */
    CHECK(server_request_parse(SERVER_REQ_COMPLETION, "{\"prompt\": \"x\"}", 15, &r, &e));
    CHECK(!r.sampling.logprobs && r.sampling.top_logprobs == 0 && r.sampling.n_logit_bias == 0 &&
          r.sampling.presence_penalty == 0 && r.sampling.frequency_penalty == 0 &&
          (r.sampling.repetition_penalty == 1 || r.sampling.repetition_penalty == 0) &&
          (r.sampling.typical_p == 1 || r.sampling.typical_p == 0) && r.sampling.n_stop == 0);
    server_request_free(&r);
    /* defaults: OpenAI's temperature 1 and top_p 1; completions stop after 16 tokens, chat at the context */
    CHECK(server_request_parse(SERVER_REQ_COMPLETION, "{\"prompt\": [[5, 6]]}", 20, &r, &e));
    CHECK(r.has_ids && r.n_ids == 2 && r.ids[1] == 6 && r.sampling.max_tokens == 16 && r.sampling.temperature == 1.0f &&
          r.sampling.top_p == 1.0f && r.sampling.top_k == 0 && r.sampling.min_p == 0.0f && !r.seed_given && !r.stream);
    server_request_free(&r);
    const char *chat = "{\"messages\": [{\"role\": \"developer\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
                       "\"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}, "
                       "{\"role\": \"assistant\", \"content\": null}], \"max_completion_tokens\": 9, \"max_tokens\": 4}";
    CHECK(server_request_parse(SERVER_REQ_CHAT, chat, strlen(chat), &r, &e));
    CHECK(r.n_messages == 3 && !strcmp(r.messages[0].role, "system") && !strcmp(r.messages[1].content, "a\nb") &&
          !strcmp(r.messages[2].content, "") && r.add_generation_prompt && r.sampling.max_tokens == 9);
    server_request_free(&r);
    CHECK(server_request_parse(SERVER_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", 48, &r, &e));
    CHECK(r.sampling.max_tokens == -1);
    server_request_free(&r);
    CHECK(server_request_parse(SERVER_REQ_TOKENIZE, "{\"prompt\": \"ab\"}", 16, &r, &e) && r.add_special);
    server_request_free(&r);
    CHECK(server_request_parse(SERVER_REQ_TOKENIZE, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", 48, &r, &e) &&
          !r.add_special && r.n_messages == 1);
    server_request_free(&r);
    /* a body that is not NUL-terminated is read only up to its length */
    char body[32];
    memcpy(body, "{\"tokens\": [7, 8]}XXXX", 22);
    CHECK(server_request_parse(SERVER_REQ_DETOKENIZE, body, 18, &r, &e) && r.n_ids == 2 && r.ids[0] == 7);
    server_request_free(&r);
    return test_finish();
}
