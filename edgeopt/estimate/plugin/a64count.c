/* SPDX-License-Identifier: GPL-2.0-or-later
 *
 * a64count: a QEMU TCG plugin (plugin API v1, QEMU 7.2) for qemu-aarch64 user mode, part of edgeopt.
 * Like QEMU's own plugins it is licensed GPL-2.0-or-later; edgeopt compiles it on the user's machine
 * (`edgeopt env create aarch64`) against the qemu-plugin.h of the installed qemu-user, and runs it as a
 * separate program's plugin: it is not linked into edgeopt.
 *
 * Inline-counts executed guest instructions (total + coarse AArch64 classes).
 * Guest marks a region by calling lseek(-1, 0x5EED0000 + tag, 0) (EBADF, harmless);
 * on each mark the plugin prints the running counters tagged with `tag`.
 * Options: classes=on|off (per-insn class counters); profile=on (per-TB exec counts between marks
 *   pstart..pend (default 11..12 = 2nd inference), dumps the top=N blocks with disassembly).
 * Single-threaded guest assumed (inline counters are not atomic). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <glib.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum { C_INT, C_BR, C_LDST_GPR, C_LDST_SIMD, C_SIMD_FP, C_DOT, C_MMLA, C_FMLA_VEC, C_N };
static const char *cname[C_N] = {"int_dp","branch_sys","ldst_gpr","ldst_simd","simd_fp","of_which_sdot_udot","of_which_smmla_ummla","of_which_fmla_vec"};
static uint64_t total, cls[C_N];
static bool do_classes, do_profile;
static uint64_t pstart = 11, pend = 12, ptop = 200;   /* profile window: between marks pstart..pend */
typedef struct { uint64_t pc, exec, snap; uint32_t n; char *disas; } TBInfo;
static GHashTable *tbs; static GMutex lock;

static int classify(uint32_t i, int *sub)
{
    *sub = -1;
    uint32_t op0 = (i >> 25) & 0xf;
    if ((op0 & 0x5) == 0x4) return (i >> 26) & 1 ? C_LDST_SIMD : C_LDST_GPR; /* x1x0 */
    if ((op0 & 0xe) == 0x8) return C_INT;                                      /* 100x */
    if ((op0 & 0xe) == 0xa) return C_BR;                                       /* 101x */
    if ((op0 & 0x7) == 0x5) return C_INT;                                      /* x101 */
    if ((op0 & 0x7) == 0x7) {                                                  /* x111 */
        if ((i & 0xbf20fc00) == 0x0e009400 || (i & 0xbf00f400) == 0x0f00e000) *sub = C_DOT;
        else if ((i & 0xbf20fc00) == 0x2e009400 || (i & 0xbf00f400) == 0x2f00e000) *sub = C_DOT;
        else if ((i & 0xdfe0fc00) == 0x4e80a400 || (i & 0xffe0fc00) == 0x4e80ac00) *sub = C_MMLA;
        else if ((i & 0xbfa0fc00) == 0x0e20cc00 || (i & 0xbf80f400) == 0x0f801000) *sub = C_FMLA_VEC;
        return C_SIMD_FP;
    }
    return C_INT;   /* incl. SVE/SME encodings */
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    if (do_profile) {
        uint64_t pc = qemu_plugin_tb_vaddr(tb), key = pc ^ ((uint64_t)n << 48);
        g_mutex_lock(&lock);
        TBInfo *t = g_hash_table_lookup(tbs, &key);
        if (!t) {
            t = g_new0(TBInfo, 1); t->pc = pc; t->n = n;
            GString *d = g_string_new(NULL);
            for (size_t k = 0; k < n; k++) {
                char *x = qemu_plugin_insn_disas(qemu_plugin_tb_get_insn(tb, k));
                g_string_append_printf(d, "  %s\n", x); g_free(x);
            }
            t->disas = g_string_free(d, FALSE);
            uint64_t *kp = g_new(uint64_t, 1); *kp = key; g_hash_table_insert(tbs, kp, t);
        }
        g_mutex_unlock(&lock);
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &t->exec, 1);
    }
    if (!do_classes) return;
    for (size_t k = 0; k < n; k++) {
        struct qemu_plugin_insn *in = qemu_plugin_tb_get_insn(tb, k);
        uint32_t w; memcpy(&w, qemu_plugin_insn_data(in), 4);
        int sub, c = classify(w, &sub);
        qemu_plugin_register_vcpu_insn_exec_inline(in, QEMU_PLUGIN_INLINE_ADD_U64, &cls[c], 1);
        if (sub >= 0) qemu_plugin_register_vcpu_insn_exec_inline(in, QEMU_PLUGIN_INLINE_ADD_U64, &cls[sub], 1);
    }
}

static void report(const char *tag)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "A64COUNT %s insns=%" PRIu64, tag, total);
    if (do_classes) for (int c = 0; c < C_N; c++) g_string_append_printf(s, " %s=%" PRIu64, cname[c], cls[c]);
    g_string_append(s, "\n");
    qemu_plugin_outs(s->str);
    g_string_free(s, TRUE);
}

static gint by_icount(gconstpointer a, gconstpointer b)
{
    const TBInfo *x = *(TBInfo **)a, *y = *(TBInfo **)b;
    uint64_t ix = (x->exec - x->snap) * x->n, iy = (y->exec - y->snap) * y->n;
    return ix < iy ? 1 : ix > iy ? -1 : 0;
}

static void profile_mark(uint64_t tag)
{
    g_mutex_lock(&lock);
    GList *vals = g_hash_table_get_values(tbs);
    if (tag == pstart) {
        for (GList *l = vals; l; l = l->next) { TBInfo *t = l->data; t->snap = t->exec; }
    } else if (tag == pend) {
        GPtrArray *a = g_ptr_array_new();
        uint64_t sum = 0;
        for (GList *l = vals; l; l = l->next) { TBInfo *t = l->data; g_ptr_array_add(a, t); sum += (t->exec - t->snap) * t->n; }
        g_ptr_array_sort(a, by_icount);
        GString *s = g_string_new(NULL);
        g_string_append_printf(s, "A64PROF window=%" PRIu64 "..%" PRIu64 " insns=%" PRIu64 " tbs=%u\n", pstart, pend, sum, a->len);
        for (guint i = 0; i < a->len && i < ptop; i++) {
            TBInfo *t = g_ptr_array_index(a, i);
            if (t->exec == t->snap) break;
            g_string_append_printf(s, "TB pc=0x%" PRIx64 " n=%u exec=%" PRIu64 "\n%s", t->pc, t->n, t->exec - t->snap, t->disas);
        }
        g_string_append(s, "A64PROF end\n");
        qemu_plugin_outs(s->str); g_string_free(s, TRUE); g_ptr_array_free(a, TRUE);
    }
    g_list_free(vals);
    g_mutex_unlock(&lock);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num == 62 /* aarch64 lseek */ && (int64_t)a1 == -1 && (a2 & 0xffff0000u) == 0x5EED0000u) {
        char t[32]; snprintf(t, sizeof t, "mark%" PRIu64, a2 & 0xffff); report(t);
        if (do_profile) profile_mark(a2 & 0xffff);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p) { report("exit"); }

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        gchar **t = g_strsplit(argv[i], "=", 2);
        if (g_strcmp0(t[0], "classes") == 0 && !qemu_plugin_bool_parse(t[0], t[1], &do_classes)) return -1;
        if (g_strcmp0(t[0], "profile") == 0 && !qemu_plugin_bool_parse(t[0], t[1], &do_profile)) return -1;
        if (g_strcmp0(t[0], "pstart") == 0) pstart = g_ascii_strtoull(t[1], NULL, 0);
        if (g_strcmp0(t[0], "pend") == 0) pend = g_ascii_strtoull(t[1], NULL, 0);
        if (g_strcmp0(t[0], "top") == 0) ptop = g_ascii_strtoull(t[1], NULL, 0);
        g_strfreev(t);
    }
    tbs = g_hash_table_new(g_int64_hash, g_int64_equal);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
