/* The per-hop audio DSP of edge/features/audio_dsp.py and the SNR order statistics of
 * edge/features/audio_quality.py, in C. The equations are in those modules' docstrings and in
 * docs/FEATURES.md; the numpy code is the reference this library is checked against, at build time
 * (qamoe/build/dsp.py) and in tests/test_audio_native.py.
 *
 * Built per machine by `python tools/build_engine.py` (stage `dsp`) into a shared library that
 * edge/features/dsp_native.py loads with ctypes. Plain C99, libm only; `#pragma omp simd` (compiled with
 * -fopenmp-simd, which needs no OpenMP runtime) lets the compiler vectorise the float sums, so their
 * rounding differs from numpy's but is fixed for a given build.
 *
 * What matches numpy bit for bit: the windowed, pre-emphasised frames (the same float32 expressions, and
 * -ffp-contract=off keeps the compiler from fusing them), the zero-crossing counts, and the order
 * statistics (an exact selection). What agrees to rounding only: hop power (summed in float lanes), the
 * decimated signal, and YIN's difference function, which is summed directly here instead of through numpy's
 * FFT autocorrelation.
 */
#include <math.h>
#include <string.h>

#define QA_DSP_ABI 3

int qa_dsp_abi(void) { return QA_DSP_ABI; }

/* Per hop h, with x = seg + starts[h] (the hop's analysis window of `win` samples):
 *   power[h] = mean of x[k]^2,  zcr[h] = share of the win - 1 adjacent pairs whose sign bits differ,
 *   frames[h, k] = (x[k] - pre * x[k - 1]) * window[k] for k < win, and 0 up to n_fft.
 * x[-1] is read: starts[h] >= 1. */
void qa_frames(const float *seg, const long *starts, int n_hops, int win, const float *window, float pre,
               int n_fft, float *frames, double *power, double *zcr) {
    for (int h = 0; h < n_hops; ++h) {
        const float *x = seg + starts[h];
        float *out = frames + (long)h * n_fft;
        float energy = 0.0f;
#pragma omp simd reduction(+ : energy)
        for (int k = 0; k < win; ++k) energy += x[k] * x[k];
        int changes = 0;
#pragma omp simd reduction(+ : changes)
        for (int k = 1; k < win; ++k) changes += (signbit(x[k]) != 0) != (signbit(x[k - 1]) != 0);
        for (int k = 0; k < win; ++k) {
            float lagged = pre * x[k - 1];
            float emphasised = x[k] - lagged;
            out[k] = emphasised * window[k];
        }
        memset(out + win, 0, sizeof(float) * (size_t)(n_fft - win));
        power[h] = (double)energy / win;
        zcr[h] = (double)changes / (win - 1);
    }
}

/* The decimating low-pass, direct form: y[i] = sum_k taps[k] x[i * decim + k], i < n_out. */
void qa_decimate(const float *x, int decim, const float *taps, int n_taps, int n_out, float *y) {
    for (int i = 0; i < n_out; ++i) {
        const float *xi = x + (long)i * decim;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int k = 0; k < n_taps; ++k) acc += taps[k] * xi[k];
        y[i] = acc;
    }
}

/* YIN per hop on the decimated signal y; hop h analyses x = y[h * step : h * step + plen]:
 *   d(t)  = sum_{j < plen - t} (x_j - x_{j+t})^2,  t = 1 .. tau_hi
 *   d'(t) = t d(t) / sum_{u <= t} d(u)   (1 where that sum is below 1e-12)
 * The lag t is the first in [tau_lo, tau_hi) with d'(t) < thr, walked on while d' keeps falling (the last
 * candidate if it never rises), else the argmin of d' over [tau_lo, tau_hi); a parabola through d'(t - 1),
 * d'(t), d'(t + 1) refines it (shift clamped to +-1):
 *   f0 = rate / (t + shift),  vprob = max(1 - d'(t), 0),
 *   voiced = (a dip below thr) and energy_db > silence_db and f0_min <= f0 <= f0_max.
 * `d` and `dn` are scratch of tau_hi + 1 floats and doubles. */
void qa_yin(const float *y, int n_hops, int step, int plen, int tau_lo, int tau_hi, const double *energy_db,
            double silence_db, double thr, double f0_min, double f0_max, double rate, float *d, double *dn,
            double *f0, double *vprob, unsigned char *voiced) {
    for (int h = 0; h < n_hops; ++h) {
        const float *x = y + (long)h * step;
        /* all lags at once, j outermost: one accumulator per lag, so the loop over t vectorises and each
         * d(t) still sums its terms in order of j */
        memset(d, 0, sizeof(float) * (size_t)(tau_hi + 1));
        for (int j = 0; j < plen - 1; ++j) {
            int t_end = plen - 1 - j < tau_hi ? plen - 1 - j : tau_hi;
            float xj = x[j];
            const float *ahead = x + j;
#pragma omp simd
            for (int t = 1; t <= t_end; ++t) {
                float diff = xj - ahead[t];
                d[t] += diff * diff;
            }
        }
        double running = 0.0;
        for (int t = 1; t <= tau_hi; ++t) {
            running += d[t];
            dn[t - 1] = running > 1e-12 ? (double)d[t] * t / running : 1.0;
        }
        /* d'(t) is dn[t - 1]; candidates t = tau_lo .. tau_hi - 1 */
        int tau = -1;
        for (int t = tau_lo; t < tau_hi; ++t) {
            if (dn[t - 1] < thr) {
                tau = tau_hi - 1;
                for (int u = t; u < tau_hi; ++u) {
                    if (dn[u] >= dn[u - 1]) {
                        tau = u;
                        break;
                    }
                }
                break;
            }
        }
        int has_dip = tau >= 0;
        if (!has_dip) {
            tau = tau_lo;
            for (int t = tau_lo + 1; t < tau_hi; ++t)
                if (dn[t - 1] < dn[tau - 1]) tau = t;
        }
        double a = dn[tau - 2], b = dn[tau - 1], c = dn[tau];
        double curve = a - 2.0 * b + c;
        double shift = 0.5 * (a - c) / (curve > 1e-9 ? curve : 1e-9);
        shift = shift < -1.0 ? -1.0 : (shift > 1.0 ? 1.0 : shift);
        double f = rate / (tau + shift);
        f0[h] = f;
        vprob[h] = b < 1.0 ? 1.0 - b : 0.0;
        voiced[h] = has_dip && energy_db[h] > silence_db && f >= f0_min && f <= f0_max;
    }
}

/* One block, the geometry and buffers set up once by the caller (edge/features/dsp_native.py mirrors this
 * struct with ctypes; QA_DSP_ABI changes whenever it does). */
typedef struct {
    int n_hops, win, n_fft, decim, n_taps, n_decim, step, plen, tau_lo, tau_hi;
    long decim_start;
    float pre;
    double silence_db, thr, f0_min, f0_max, rate, log_floor;
    const long *starts;
    const float *window, *taps;
    float *frames, *y, *d;
    double *power, *energy_db, *zcr, *dn, *f0, *vprob;
    unsigned char *voiced;
} qa_plan;

/* Everything per hop that does not need an FFT: the frames to transform, power, energy (dB, floored at
 * log_floor), zero crossings, and YIN on the decimated signal. */
void qa_analyse(const float *seg, const qa_plan *p) {
    qa_frames(seg, p->starts, p->n_hops, p->win, p->window, p->pre, p->n_fft, p->frames, p->power, p->zcr);
    for (int h = 0; h < p->n_hops; ++h)
        p->energy_db[h] = 10.0 * log10(p->power[h] > p->log_floor ? p->power[h] : p->log_floor);
    qa_decimate(seg + p->decim_start, p->decim, p->taps, p->n_taps, p->n_decim, p->y);
    qa_yin(p->y, p->n_hops, p->step, p->plen, p->tau_lo, p->tau_hi, p->energy_db, p->silence_db, p->thr,
           p->f0_min, p->f0_max, p->rate, p->d, p->dn, p->f0, p->vprob, p->voiced);
}

/* Log-mel and MFCC of each hop from its spectrum (complex64 as interleaved float pairs, n_bins per hop):
 *   log_mel[m] = ln(max(sum_b |X_b|^2 fb_t[b, m], log_floor)),  mfcc[c] = sum_m log_mel[m] dct_t[m, c]
 * with fb_t (n_bins x n_mels) the triangular filterbank and dct_t (n_mels x n_mfcc) the orthonormal DCT-II. */
void qa_mel(const float *spec, int n_hops, int n_bins, int n_mels, int n_mfcc, const float *fb_t,
            const float *dct_t, float log_floor, float *power, float *log_mel, float *mfcc) {
    for (int h = 0; h < n_hops; ++h) {
        const float *x = spec + 2L * h * n_bins;
        float *lm = log_mel + (long)h * n_mels;
        for (int b = 0; b < n_bins; ++b) power[b] = x[2 * b] * x[2 * b] + x[2 * b + 1] * x[2 * b + 1];
        for (int m = 0; m < n_mels; ++m) lm[m] = 0.0f;
        for (int b = 0; b < n_bins; ++b) {
            float pb = power[b];
            const float *w = fb_t + (long)b * n_mels;
#pragma omp simd
            for (int m = 0; m < n_mels; ++m) lm[m] += pb * w[m];
        }
        for (int m = 0; m < n_mels; ++m) lm[m] = logf(lm[m] > log_floor ? lm[m] : log_floor);
        float *c = mfcc + (long)h * n_mfcc;
        for (int k = 0; k < n_mfcc; ++k) c[k] = 0.0f;
        for (int m = 0; m < n_mels; ++m) {
            float v = lm[m];
            const float *w = dct_t + (long)m * n_mfcc;
            for (int k = 0; k < n_mfcc; ++k) c[k] += v * w[k];
        }
    }
}

/* The k-th smallest of v[0 .. n-1] (v is reordered): Hoare's selection, exact. */
static double select_kth(double *v, long n, long k) {
    long lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        long i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) ++i;
            while (v[j] > pivot) --j;
            if (i <= j) {
                double tmp = v[i];
                v[i] = v[j];
                v[j] = tmp;
                ++i;
                --j;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

/* For each window w, power[starts[w] .. ends[w] - 1] (n = its length): the order statistics
 * k = floor(q_noise (n - 1)) and k = floor(q_signal (n - 1)). `scratch` holds max(n) doubles. */
void qa_order_stats(const double *power, const long *starts, const long *ends, int n_windows, double q_noise,
                    double q_signal, double *scratch, double *noise, double *loud) {
    for (int w = 0; w < n_windows; ++w) {
        long n = ends[w] - starts[w];
        long k_noise = (long)(q_noise * (double)(n - 1)), k_loud = (long)(q_signal * (double)(n - 1));
        memcpy(scratch, power + starts[w], sizeof(double) * (size_t)n);
        noise[w] = select_kth(scratch, n, k_noise);
        loud[w] = select_kth(scratch, n, k_loud);
    }
}

/* The rest of a block, per model frame of `hpf` hops (edge/features/audio.py, _process_block): the hop means
 * of MFCC, energy, voicing probability, zero crossings and spectral flux; the mean F0 in semitones re 100 Hz
 * over voiced hops and the voiced share; the VAD probability weighted by chunk overlap; the SNR estimate
 * (audio_quality.py: order statistics of the hop powers of the last `history` hops, speech-hop mean); and
 * the clipped share of the frame's samples. The struct carries the stream state (the previous hop's log-mel
 * for the flux, and the power / speech history), which the caller resets by zeroing has_prev and n_hist. */
typedef struct {
    int n_frames, hpf, n_mfcc, n_mels, n_chunks, frame_samples, history, min_speech, has_prev;
    long n_hist;
    double vad_threshold, clip_level, q_noise, q_signal, power_floor, ratio_floor, snr_max_db;
    const long *hop_chunk;
    const float *vad_weights;
    float *prev_log_mel;
    double *hist_p, *scratch;
    unsigned char *hist_s;
} qa_tail;

void qa_tail_block(qa_tail *t, const float *mfcc, const float *log_mel, const double *energy_db,
                   const double *vprob, const double *zcr, const double *f0, const unsigned char *voiced,
                   const double *power, const float *probs, const float *block, float *out) {
    int n_hops = t->n_frames * t->hpf, n_cols = t->n_mfcc + 9;
    /* SNR history: keep the last history - 1 hops, then append this block's */
    long keep = t->history - 1;
    if (t->n_hist > keep) {
        memmove(t->hist_p, t->hist_p + (t->n_hist - keep), sizeof(double) * (size_t)keep);
        memmove(t->hist_s, t->hist_s + (t->n_hist - keep), (size_t)keep);
        t->n_hist = keep;
    }
    for (int h = 0; h < n_hops; ++h) {
        t->hist_p[t->n_hist + h] = power[h];
        t->hist_s[t->n_hist + h] = probs[t->hop_chunk[h]] >= t->vad_threshold;
    }
    t->n_hist += n_hops;
    for (int f = 0; f < t->n_frames; ++f) {
        float *row = out + (long)f * n_cols;
        int h0 = f * t->hpf;
        for (int c = 0; c < t->n_mfcc; ++c) {
            double acc = 0.0;
            for (int h = h0; h < h0 + t->hpf; ++h) acc += mfcc[(long)h * t->n_mfcc + c];
            row[c] = (float)(acc / t->hpf);
        }
        double e = 0.0, vp = 0.0, z = 0.0, flux = 0.0, semis = 0.0;
        int n_voiced = 0;
        for (int h = h0; h < h0 + t->hpf; ++h) {
            e += energy_db[h];
            vp += vprob[h];
            z += zcr[h];
            const float *now = log_mel + (long)h * t->n_mels;
            const float *before = h > 0 ? now - t->n_mels : (t->has_prev ? t->prev_log_mel : now);
            double rise = 0.0;
            for (int m = 0; m < t->n_mels; ++m) {
                float step = now[m] - before[m];
                rise += step > 0.0f ? step : 0.0f;
            }
            flux += rise / t->n_mels;
            if (voiced[h]) {
                ++n_voiced;
                semis += 12.0 * log2(f0[h] / 100.0);
            }
        }
        double speech = 0.0;
        for (int c = 0; c < t->n_chunks; ++c) speech += (double)t->vad_weights[f * t->n_chunks + c] * probs[c];
        long end = t->n_hist - n_hops + (long)(f + 1) * t->hpf;
        long start = end - t->history > 0 ? end - t->history : 0;
        double noise, loud;
        qa_order_stats(t->hist_p, &start, &end, 1, t->q_noise, t->q_signal, t->scratch, &noise, &loud);
        double speech_sum = 0.0;
        int n_speech = 0;
        for (long i = start; i < end; ++i)
            if (t->hist_s[i]) {
                speech_sum += t->hist_p[i];
                ++n_speech;
            }
        double signal = n_speech >= t->min_speech ? speech_sum / n_speech : loud;
        double ratio = signal / (noise > t->power_floor ? noise : t->power_floor) - 1.0;
        double snr = 10.0 * log10(ratio > t->ratio_floor ? ratio : t->ratio_floor);
        int clipped = 0;
        const float *x = block + (long)f * t->frame_samples;
        for (int i = 0; i < t->frame_samples; ++i) clipped += fabsf(x[i]) >= t->clip_level;
        int k = t->n_mfcc;
        row[k] = (float)(e / t->hpf);
        row[k + 1] = (float)(semis / (n_voiced > 1 ? n_voiced : 1));
        row[k + 2] = (float)(vp / t->hpf);
        row[k + 3] = (float)((double)n_voiced / t->hpf);
        row[k + 4] = (float)(z / t->hpf);
        row[k + 5] = (float)(flux / t->hpf);
        row[k + 6] = (float)speech;
        row[k + 7] = (float)(snr < t->snr_max_db ? snr : t->snr_max_db);
        row[k + 8] = (float)((double)clipped / t->frame_samples);
    }
    memcpy(t->prev_log_mel, log_mel + (long)(n_hops - 1) * t->n_mels, sizeof(float) * (size_t)t->n_mels);
    t->has_prev = 1;
}
