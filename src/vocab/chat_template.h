/* vocab/chat_template.h - turns a conversation into the prompt text a chat model expects, exactly
 * as Hugging Face's tokenizer.apply_chat_template(messages, tokenize=False) renders it.
 *
 * Two ways to get a template:
 *   - the model's own Jinja template (GGUF key tokenizer.chat_template), run by the interpreter in
 *     vocab/jinja.h with the variables HF gives it: messages, add_generation_prompt, bos_token,
 *     eos_token (undefined when NULL), tools = documents = none;
 *   - a built-in, written in C, that reproduces one real model family's template byte for byte:
 *       "chatml"        <|im_start|>role\ncontent<|im_end|>\n  (OpenHermes-2.5 style, no default system)
 *       "qwen2"         ChatML + "You are a helpful assistant." when no system message (Qwen2-Instruct)
 *       "smollm2"       ChatML + SmolLM2-Instruct's default system prompt
 *       "llama3"        <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> (Meta-Llama-3-Instruct)
 *       "llama3.1"      Llama 3.1 Instruct (system header with "Cutting Knowledge Date"; tool
 *                       messages as ipython; no tool definitions)
 *       "llama2"        <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] (Llama-2-chat)
 *       "mistral"       <s>[INST] ... [/INST]answer</s> (Mistral-7B-Instruct-v0.1, no system role)
 *       "mistral-v0.2"  as "mistral" without the space after </s> (v0.2, Mixtral-8x7B-Instruct)
 *     Built-ins raise the same errors their templates raise (e.g. roles that do not alternate).
 *
 * A model whose template does not parse can fall back to a built-in chosen from the template's text
 * (chat_template_detect_builtin / chat_template_init_auto).
 */
#ifndef PAGODA_VOCAB_CHAT_TEMPLATE_H
#define PAGODA_VOCAB_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "pagoda.h" /* defines: pagoda_status */

typedef struct chat_message {
    const char *role;    /* "system", "user", "assistant", "tool", ... */
    const char *content; /* UTF-8 */
} chat_message;

typedef struct chat_template chat_template;

/* Parses a model's Jinja template. template_source NULL selects the "chatml" built-in. bos_text /
 * eos_text are the model's BOS/EOS token texts (NULL: the variable is undefined, as in HF when a
 * tokenizer has no such token). Errors: PAGODA_ERR_FORMAT (the template does not parse; the message
 * gives line and column), PAGODA_ERR_OUT_OF_MEMORY, PAGODA_ERR_INVALID_ARGUMENT (out NULL). */
pagoda_status chat_template_init(const char *template_source, const char *bos_text, const char *eos_text,
                                 chat_template **out);
/* A built-in by name (list above). Errors: PAGODA_ERR_INVALID_ARGUMENT for an unknown name. */
pagoda_status chat_template_init_builtin(const char *name, const char *bos_text, const char *eos_text,
                                         chat_template **out);
/* chat_template_init, and when the template does not parse, the built-in that
 * chat_template_detect_builtin() names (the parse error is returned when there is none). */
pagoda_status chat_template_init_auto(const char *template_source, const char *bos_text, const char *eos_text,
                                      chat_template **out);
void chat_template_free(chat_template *t);

/* Renders the messages; add_generation_prompt as in HF (appends the assistant header where the
 * template supports it). *out_text is malloc'd and NUL-terminated; the caller frees it.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT when the template rejects the conversation (its
 * raise_exception message, e.g. "Conversation roles must alternate ...") or a NULL argument;
 * PAGODA_ERR_FORMAT for a run-time error inside a Jinja template; PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status chat_template_apply(const chat_template *t, const chat_message *msgs, size_t n_msgs,
                                  bool add_generation_prompt, char **out_text);

/* "jinja" for a model's template, else the built-in's name. */
const char *chat_template_name(const chat_template *t);

/* The built-in that matches a template's text, from markers it contains ("<|im_start|>" -> chatml
 * family, "<|start_header_id|>" -> llama3 family, "[INST]" -> llama2/mistral); NULL if none. */
const char *chat_template_detect_builtin(const char *template_source);

#endif
