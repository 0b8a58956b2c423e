/* Emulate an AVX2-only CPU for one library, for bench/cpuid_mask.py.
 *
 * ONNX Runtime's math library (MLAS) picks its kernels from `cpuid` and has no switch to cap them.
 * bench/cpuid_mask.py copies the onnxruntime package and overwrites each `cpuid` instruction of its
 * extension module with `ud2` (both two bytes); this library (LD_PRELOAD) catches the resulting SIGILL,
 * runs the real cpuid, clears the AVX-512, AVX-VNNI, bf16 and AMX feature bits, and resumes after it.
 * Only that library's cpuid calls (a few dozen, at start-up) are affected; nothing else in the process.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

static volatile long emulated;

static void on_sigill(int sig, siginfo_t *info, void *context) {
    (void)info;
    greg_t *reg = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)reg[REG_RIP];
    if (ip[0] != 0x0F || ip[1] != 0x0B) { /* a real illegal instruction: die as usual */
        signal(sig, SIG_DFL);
        return;
    }
    unsigned leaf = (unsigned)reg[REG_RAX], sub = (unsigned)reg[REG_RCX], a, b, c, d;
    __cpuid_count(leaf, sub, a, b, c, d);
    if (leaf == 7 && sub == 0) {
        /* EBX: avx512 f dq ifma pf er cd bw vl; ECX: vbmi vbmi2 vnni bitalg vpopcntdq;
           EDX: 4vnniw 4fmaps vp2intersect amx_bf16 avx512_fp16 amx_tile amx_int8 */
        b &= ~(1u << 16 | 1u << 17 | 1u << 21 | 1u << 26 | 1u << 27 | 1u << 28 | 1u << 30 | 1u << 31);
        c &= ~(1u << 1 | 1u << 6 | 1u << 11 | 1u << 12 | 1u << 14);
        d &= ~(1u << 2 | 1u << 3 | 1u << 8 | 1u << 22 | 1u << 23 | 1u << 24 | 1u << 25);
    } else if (leaf == 7 && sub == 1) {
        /* EAX: avx_vnni avx512_bf16 amx_fp16 avx_ifma; EDX: avx_vnni_int8 avx_ne_convert avx_vnni_int16 avx10 */
        a &= ~(1u << 4 | 1u << 5 | 1u << 21 | 1u << 23);
        d &= ~(1u << 4 | 1u << 5 | 1u << 10 | 1u << 19);
    }
    reg[REG_RAX] = a;
    reg[REG_RBX] = b;
    reg[REG_RCX] = c;
    reg[REG_RDX] = d;
    reg[REG_RIP] += 2;
    emulated++;
}

__attribute__((constructor)) static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigill;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGILL, &action, NULL);
}

__attribute__((destructor)) static void report(void) {
    if (getenv("CPUID_MASK_REPORT")) fprintf(stderr, "cpuid_mask: %ld cpuid calls emulated\n", emulated);
}
