/* flm_arch.h: model architectures as data, shared by the server and the client.
 *
 * An flm_arch describes the layers, the per-sample shapes, the parameter tensors and their place
 * in ONE flat float buffer (llm.c style: parameters, gradients, optimizer state and federated
 * deltas all share this layout), and which units of which layers may be dropped. It holds no
 * weights and no training code: the server uses it to know shapes and droppable units, the client
 * to train. An flm_arch is a plain value (no pointers): copy it freely. Thread-safe (read-only).
 *
 * Spec strings (travel in the Task message as the architecture id):
 *   mlp:784-200-200-10           dense layers, input 784 features, hidden 200 and 200, 10 classes
 *   cnn  |  cnn:CLASSES  |  cnn:CLASSES:HxWxC
 *                                LEAF FEMNIST CNN: conv 5x5x32 same + relu + maxpool 2, conv 5x5x64
 *                                same + relu + maxpool 2, flatten, dense 2048 + relu, dense CLASSES.
 *                                Default 62 classes on 28x28x1 (6,603,710 parameters).
 *   lstm |  lstm:VOCAB:EMB:HIDDEN:LAYERS:SEQ
 *                                LEAF Shakespeare: embedding VOCABxEMB, LAYERS stacked LSTMs of
 *                                HIDDEN units over SEQ steps, last step, dense VOCAB.
 *                                Default 80:8:256:2:80.
 *   moge |  moge:IN:HIDDEN:GROUPS:EXPERTS:TOPK:CLASSES[:AUX]
 *                                dense HIDDEN + relu, a mixture of grouped experts (flm_moge.h):
 *                                GROUPS groups of EXPERTS experts, each HIDDEN -> HIDDEN, TOPK used
 *                                per group and sample, + relu, dense CLASSES.
 *                                Default 784:128:4:4:1:10 (368,026 parameters). GROUPS 1-64,
 *                                EXPERTS (a group's) 1-256, TOPK 1-16 and at most EXPERTS. AUX:
 *                                the load-balancing loss's coefficient (flm_moge.h), a decimal
 *                                from 0 to 1 with at most 6 decimals (0.01); 0 or absent: none.
 *                                The canonical spec writes it without trailing zeros, and not
 *                                at all when 0.
 *
 * Shapes: an image sample is (C, H, W), channel-major; a sequence sample is (T, C) with T stored in
 * the H field (W = 1); a feature vector is (C) with H = W = 1. Flatten keeps channel-major order:
 * element (c, h, w) goes to c*H*W + h*W + w.
 *
 * Droppable units (see shared AFD.md): dense output neurons, conv filters, LSTM hidden units of
 * every parametrised layer except the last (the logits); a MoGE layer's experts, the same number
 * in every group (drop_groups). Embedding and input never drop.
 */
#ifndef FLM_ARCH_H
#define FLM_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "fl_status.h"

#define FLM_MAX_LAYERS 24
#define FLM_MAX_TENSORS 48
#define FLM_ARCH_SPEC_MAX 64  /* a spec string as given, with its terminating NUL */
#define FLM_ARCH_DESC_MAX 160 /* flm_arch.spec: a submodel's (flm_arch_sub) is longer */

typedef enum flm_op {
    FLM_OP_DENSE = 1,     /* (C) -> (OC): y = W x + b; W (OC, C), b (OC) */
    FLM_OP_CONV2D = 2,    /* (C,H,W) -> (OC,OH,OW), stride 1; W (OC, C, K, K), b (OC) */
    FLM_OP_MAXPOOL2D = 3, /* (C,H,W) -> (C,H/K,W/K), window K, stride K */
    FLM_OP_RELU = 4,      /* elementwise */
    FLM_OP_FLATTEN = 5,   /* (C,H,W) -> (C*H*W) */
    FLM_OP_EMBEDDING = 6, /* tokens (T) -> (T, OC); W (V, OC), V = layer C */
    FLM_OP_LSTM = 7,      /* (T, C) -> (T, OC): w_ih (4*OC, C), w_hh (4*OC, OC), b (4*OC);
                             gate blocks in PyTorch order i, f, g, o; b = PyTorch b_ih + b_hh */
    FLM_OP_LAST_STEP = 8, /* (T, C) -> (C): the last time step */
    FLM_OP_MOGE = 9,      /* (C) -> (OC): mixture of grouped experts (flm_moge.h); gate_w (N, C),
                             gate_b (N), w (OC*N, C), b (OC*N); N = experts; units are experts */
} flm_op;

typedef enum flm_role {
    FLM_ROLE_W = 0,    /* dense / conv / embedding weight */
    FLM_ROLE_B = 1,    /* bias */
    FLM_ROLE_W_IH = 2, /* LSTM input-to-hidden */
    FLM_ROLE_W_HH = 3, /* LSTM hidden-to-hidden */
    FLM_ROLE_EXPERT_W = 4, /* MoGE experts' weights */
    FLM_ROLE_EXPERT_B = 5, /* MoGE experts' biases */
} flm_role;

typedef struct flm_layer {
    flm_op op;
    int C, H, W;       /* per-sample input shape (see the header comment) */
    int OC, OH, OW;    /* per-sample output shape */
    int K;             /* conv kernel / pool window, 0 otherwise */
    int pad;           /* conv zero padding on each side: (K-1)/2 for same, 0 for valid */
    int drop;          /* index among droppable layers, or -1 if this layer never drops */
    int tensor0;       /* first parameter tensor of this layer in arch.tensors */
    int n_tensors;     /* its number of parameter tensors (0 for relu, pool, flatten, last) */
    int experts;       /* MoGE: experts N (its units), a multiple of groups; 0 otherwise */
    int groups;        /* MoGE: groups G; 0 otherwise */
    int topk;          /* MoGE: experts a sample uses per group (at most N / G of them run) */
    int aux_ppm;       /* MoGE: the load-balancing loss's coefficient in millionths (flm_moge.h;
                        * 0: none); 0 otherwise */
} flm_layer;

/* How a parameter tensor is cut when units are dropped. A tensor is viewed as a row-major 2-D
 * array of `rows` x (`cols` * `inner`) floats: rows are the tensor's dimension 0, each column is a
 * contiguous block of `inner` floats (K*K for a conv input channel, OH*OW for the dense layer
 * after a flatten, 1 otherwise). A 1-D tensor (bias) has cols = inner = 1. */
typedef struct flm_tensor {
    char name[24];     /* "conv1.w", "lstm0.w_hh", "dense2.b" */
    int layer;         /* index in arch.layers */
    flm_role role;
    int rank;
    int shape[4];
    size_t offset;     /* in floats, into the flat parameter buffer */
    size_t numel;
    int rows, cols, inner;
    int row_drop;      /* droppable layer whose units select rows, or -1 */
    int row_blocks;    /* rows = row_blocks * units (4 for LSTM gates, OC for MoGE experts, else 1) */
    int col_drop;      /* droppable layer whose units select columns, or -1 */
} flm_tensor;

typedef struct flm_arch {
    char spec[FLM_ARCH_DESC_MAX]; /* canonical spec string (a submodel's: see flm_arch_sub) */
    char family[8];               /* "mlp", "cnn", "lstm", "moge" */
    int in_C, in_H, in_W;         /* per-sample input shape; lstm: in_H = T tokens */
    int classes;                  /* logits per sample */
    int token_input;              /* 1: inputs are int token ids (lstm), 0: floats */
    int n_layers;
    flm_layer layers[FLM_MAX_LAYERS];
    int n_tensors;
    flm_tensor tensors[FLM_MAX_TENSORS];
    int n_drop;                   /* droppable layers */
    int drop_layer[FLM_MAX_LAYERS];  /* layer index of droppable layer d */
    int drop_units[FLM_MAX_LAYERS];  /* full unit count of droppable layer d */
    int drop_groups[FLM_MAX_LAYERS]; /* groups of droppable layer d: a keep-set keeps the same
                                        count of units in each (unit j in group j / (units / G));
                                        1 but for a MoGE layer */
    size_t n_params;              /* total floats in the flat buffer */
} flm_arch;

/* Parses a spec string into out (canonicalising it into out->spec). Returns FL_OK, or
 * FL_ERR_MODEL_SPEC with a readable reason in err (errlen bytes, may be NULL). */
fl_status flm_arch_parse(const char *spec, flm_arch *out, char *err, size_t errlen);

/* The architecture of a submodel: the same layers with droppable layer d keeping units[d] of its
 * units (1 <= units[d] <= full count), all shapes and offsets recomputed. units has full->n_drop
 * entries. Its spec names the submodel, so that two submodels of other shapes never share one: an
 * mlp's is the mlp spec of the kept widths ("mlp:784-150-150-10", which parses to the same
 * shapes); a cnn's or an lstm's is the full spec, '/', and the units kept by each droppable layer
 * ("cnn:10:28x28x1/24,48,1536"); with every unit kept, the full spec. Returns FL_ERR_KEEPSET if a
 * count is out of range. */
fl_status flm_arch_sub(const flm_arch *full, const int *units, flm_arch *out);

/* Index of the tensor with this name, or -1. */
int flm_arch_find_tensor(const flm_arch *a, const char *name);

/* Multiply-accumulates of one forward pass for one sample (backward is about twice this). */
double flm_arch_forward_flops(const flm_arch *a);

/* Floats of activations one sample needs in a forward pass (all layer outputs). */
size_t flm_arch_activation_floats(const flm_arch *a);

/* round(p * n), at least 1 and at most n: the unit count a keep fraction p gives (AFD.md). */
int flm_keep_count(double p, int n);
/* The groups of droppable layer d: drop_groups[d], or 1 where it is 0 (an flm_arch filled by
 * hand). Pure. */
int flm_arch_groups(const flm_arch *a, int d);
/* The units droppable layer d keeps at keep fraction p: flm_keep_count(p, units / G) in each of its
 * G groups (G = 1 but for MoGE: flm_keep_count(p, units)). Pure. */
int flm_arch_keep_units(const flm_arch *a, int d, double p);

/* What a client holds per parameter of the submodel it trains, estimated: the received and the
 * working weights, the gradient and the encoded update (4 float-sized buffers); an up codec with
 * error feedback (top-k) adds, per parameter of the full model, its residual and the copy of it
 * from before the last training that libflclient keeps to replay a round exactly (two floats,
 * FLM_RESIDUAL_BYTES_PER_PARAM). Batch activations and the optimizer's momentum come on top. The
 * client refuses a Task above its memory_bytes by this estimate, and the server does not select
 * it for one. */
#define FLM_TRAIN_BYTES_PER_PARAM 16
#define FLM_RESIDUAL_BYTES_PER_PARAM 8
uint64_t flm_train_memory_need(size_t sub_params, size_t full_params, int residual);

#endif
