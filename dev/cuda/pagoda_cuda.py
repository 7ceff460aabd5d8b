"""dev/cuda/pagoda_cuda.py - ctypes bindings of build-cuda/libpagoda_cuda.so (the C API of
src/backend/cuda/cuda_attention.h) over torch CUDA tensors, for the checks and benchmarks in
dev/cuda/. Tensors are passed by data_ptr(); every call runs on torch's current stream.
Development tooling only: Pagoda itself never needs Python."""
import ctypes
import math
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB_PATH = os.environ.get("PAGODA_CUDA_LIB", os.path.join(ROOT, "build-cuda", "libpagoda_cuda.so"))

c_int, c_float, c_u64, c_void_p, c_size_t = ctypes.c_int, ctypes.c_float, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t


class FwdArgs(ctypes.Structure):
    _fields_ = [("dtype", c_int), ("q", c_void_p), ("k", c_void_p), ("v", c_void_p), ("out", c_void_p),
                ("lse", c_void_p), ("cu_seqlens_q", c_void_p), ("cu_seqlens_k", c_void_p),
                ("batch", c_int), ("total_q", c_int), ("max_seqlen_q", c_int), ("max_seqlen_k", c_int),
                ("n_head", c_int), ("n_kv_head", c_int), ("head_dim", c_int), ("scale", c_float),
                ("causal", c_int), ("dropout_p", c_float), ("seed", c_u64), ("offset", c_u64),
                ("n_splits", c_int), ("workspace", c_void_p), ("stream", c_void_p)]


class BwdArgs(ctypes.Structure):
    _fields_ = [("fwd", FwdArgs), ("dout", c_void_p), ("dq", c_void_p), ("dk", c_void_p), ("dv", c_void_p),
                ("workspace", c_void_p)]


class PagedArgs(ctypes.Structure):
    _fields_ = [("dtype", c_int), ("q", c_void_p), ("out", c_void_p), ("lse", c_void_p), ("k_cache", c_void_p),
                ("v_cache", c_void_p), ("query_start", c_void_p), ("seq_lens", c_void_p),
                ("block_tables", c_void_p), ("n_seqs", c_int), ("n_tokens", c_int), ("max_n_q", c_int),
                ("max_seq_len", c_int), ("max_blocks_per_seq", c_int), ("block_size", c_int),
                ("n_head", c_int), ("n_kv_head", c_int), ("head_dim", c_int), ("scale", c_float),
                ("n_splits", c_int), ("workspace", c_void_p), ("stream", c_void_p)]


lib = ctypes.CDLL(LIB_PATH)
for name, argt, rest in [
    ("cuda_flash_attn_fwd", [ctypes.POINTER(FwdArgs)], c_int),
    ("cuda_flash_fwd_workspace_bytes", [ctypes.POINTER(FwdArgs)], c_size_t),
    ("cuda_flash_attn_bwd", [ctypes.POINTER(BwdArgs)], c_int),
    ("cuda_flash_bwd_workspace_bytes", [ctypes.POINTER(BwdArgs)], c_size_t),
    ("cuda_paged_attention", [ctypes.POINTER(PagedArgs)], c_int),
    ("cuda_paged_attention_workspace_bytes", [ctypes.POINTER(PagedArgs)], c_size_t),
    ("cuda_attn_num_splits", [c_int, c_int], c_int),
    ("cuda_kv_write", [c_int, c_void_p, c_void_p, c_int, c_void_p, c_void_p, c_void_p, ctypes.c_int64, c_int, c_int,
                       c_void_p], c_int),
    ("cuda_kv_copy_blocks", [c_void_p, c_void_p, c_int, c_void_p, c_void_p, c_int, c_size_t, c_void_p], c_int),
    ("cuda_dropout_mask", [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int, c_int, c_float, c_u64, c_u64,
                           c_void_p], c_int),
    ("pagoda_last_error", [], ctypes.c_char_p),
]:
    fn = getattr(lib, name)
    fn.argtypes, fn.restype = argt, rest

DTYPES = {torch.bfloat16: 0, torch.float16: 1}


def _ptr(t):
    return None if t is None else t.data_ptr()


def _check(status, what):
    if status != 0:
        raise RuntimeError(f"{what}: status {status}: {lib.pagoda_last_error().decode()}")


def _workspace(nbytes):
    return torch.empty(max(nbytes, 1), dtype=torch.uint8, device="cuda") if nbytes else None


def fwd_args(q, k, v, out, lse, cu_q, cu_k, max_q, max_k, causal, scale=None, dropout_p=0.0, seed=0, offset=0,
             n_splits=1):
    d = q.shape[-1]
    a = FwdArgs(DTYPES[q.dtype], _ptr(q), _ptr(k), _ptr(v), _ptr(out), _ptr(lse), _ptr(cu_q), _ptr(cu_k),
                cu_q.numel() - 1, q.shape[0], max_q, max_k, q.shape[1], k.shape[1], d,
                scale if scale is not None else 1.0 / math.sqrt(d), int(causal), dropout_p, seed, offset,
                n_splits, None, None)
    return a


def flash_fwd(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale=None, dropout_p=0.0, seed=0, offset=0, n_splits=1,
              out=None, lse=None, poison=True):
    """q [total_q][H][D], k/v [total_k][Hkv][D] -> (out, lse [H][total_q])."""
    if out is None:
        out = torch.empty_like(q)
    if lse is None:
        lse = torch.empty(q.shape[1], q.shape[0], dtype=torch.float32, device=q.device)
    if poison:
        out.fill_(float("nan"))
        lse.fill_(float("nan"))
    a = fwd_args(q, k, v, out, lse, cu_q, cu_k, max_q, max_k, causal, scale, dropout_p, seed, offset, n_splits)
    ws = _workspace(lib.cuda_flash_fwd_workspace_bytes(ctypes.byref(a)))
    a.workspace = _ptr(ws)
    _check(lib.cuda_flash_attn_fwd(ctypes.byref(a)), "cuda_flash_attn_fwd")
    return out, lse


def flash_bwd(q, k, v, out, lse, dout, cu_q, cu_k, max_q, max_k, causal, scale=None, dropout_p=0.0, seed=0, offset=0,
              grads=None, poison=True):
    dq, dk, dv = grads if grads is not None else (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v))
    if poison:
        for t in (dq, dk, dv):
            t.fill_(float("nan"))
    b = BwdArgs(fwd_args(q, k, v, out, lse, cu_q, cu_k, max_q, max_k, causal, scale, dropout_p, seed, offset, 1),
                _ptr(dout), _ptr(dq), _ptr(dk), _ptr(dv), None)
    ws = _workspace(lib.cuda_flash_bwd_workspace_bytes(ctypes.byref(b)))
    b.workspace = _ptr(ws)
    _check(lib.cuda_flash_attn_bwd(ctypes.byref(b)), "cuda_flash_attn_bwd")
    return dq, dk, dv


def paged_args(q, out, lse, k_cache, v_cache, query_start, seq_lens, block_tables, max_n_q, max_seq_len, scale=None,
               n_splits=0):
    d = q.shape[-1]
    return PagedArgs(DTYPES[q.dtype], _ptr(q), _ptr(out), _ptr(lse), _ptr(k_cache), _ptr(v_cache), _ptr(query_start),
                     _ptr(seq_lens), _ptr(block_tables), seq_lens.numel(), q.shape[0], max_n_q, max_seq_len,
                     block_tables.shape[1], k_cache.shape[1], q.shape[1], k_cache.shape[2], d,
                     scale if scale is not None else 1.0 / math.sqrt(d), n_splits, None, None)


def paged_attention(q, k_cache, v_cache, query_start, seq_lens, block_tables, max_n_q, max_seq_len, scale=None,
                    n_splits=0, out=None, lse=None, poison=True, workspace=None):
    """q [n_tokens][H][D]; caches [n_blocks][block_size][Hkv][D]; block_tables [n_seqs][max_blocks]."""
    if out is None:
        out = torch.empty_like(q)
    if lse is None:
        lse = torch.empty(q.shape[1], q.shape[0], dtype=torch.float32, device=q.device)
    if poison:
        out.fill_(float("nan"))
        lse.fill_(float("nan"))
    a = paged_args(q, out, lse, k_cache, v_cache, query_start, seq_lens, block_tables, max_n_q, max_seq_len, scale,
                   n_splits)
    if workspace is None:
        workspace = _workspace(lib.cuda_paged_attention_workspace_bytes(ctypes.byref(a)))
    a.workspace = _ptr(workspace)
    _check(lib.cuda_paged_attention(ctypes.byref(a)), "cuda_paged_attention")
    return out, lse


def paged_workspace(q, k_cache, v_cache, query_start, seq_lens, block_tables, max_n_q, max_seq_len, n_splits=0):
    a = paged_args(q, None, None, k_cache, v_cache, query_start, seq_lens, block_tables, max_n_q, max_seq_len, None,
                   n_splits)
    return _workspace(lib.cuda_paged_attention_workspace_bytes(ctypes.byref(a)))


def kv_write(k_cache, v_cache, k_new, v_new, slot_mapping):
    src = {torch.bfloat16: 0, torch.float16: 1, torch.float32: 2}[k_new.dtype]
    _check(lib.cuda_kv_write(DTYPES[k_cache.dtype], _ptr(k_cache), _ptr(v_cache), src, _ptr(k_new), _ptr(v_new),
                             _ptr(slot_mapping), k_new.shape[0], k_new.shape[1], k_new.shape[2], None), "cuda_kv_write")


def kv_copy_blocks(k_layers, v_layers, src, dst):
    kp = torch.tensor([t.data_ptr() for t in k_layers], dtype=torch.int64, device="cuda")
    vp = torch.tensor([t.data_ptr() for t in v_layers], dtype=torch.int64, device="cuda")
    block_bytes = k_layers[0][0].numel() * k_layers[0].element_size()
    _check(lib.cuda_kv_copy_blocks(_ptr(kp), _ptr(vp), len(k_layers), _ptr(src), _ptr(dst), src.numel(), block_bytes,
                                   None), "cuda_kv_copy_blocks")


def dropout_mask(cu_q, cu_k, total_q, max_k, n_head, p, seed, offset):
    mask = torch.empty(n_head, total_q, max_k, dtype=torch.uint8, device="cuda")
    _check(lib.cuda_dropout_mask(_ptr(mask), _ptr(cu_q), _ptr(cu_k), cu_q.numel() - 1, total_q, max_k, n_head, p, seed,
                                 offset, None), "cuda_dropout_mask")
    return mask


def num_splits(n_ctas, max_seq_len):
    return lib.cuda_attn_num_splits(n_ctas, max_seq_len)
