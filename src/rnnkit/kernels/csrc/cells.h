/* The cells the native kernels run: one header each with that cell's math for one sequence at
 * one time step, forward and backward (cell_NAME.h: NAME_forward, NAME_backward), and one line of
 * the table RK_CELLS. Everything else (the recurrence over time and batch, whole layers, the
 * trainer) is generic and reads a cell only through this table. Adding a cell: its header, its
 * #include and its line below, and in Python a NativeSpec in its CellSpec (nn/cells/NAME.py) with
 * the same code and traits (a test compares the two tables).
 *
 * Included by rnnkit_kernels.c once per floating-point type (real = float, then double); the table
 * and the traits are defined on the first inclusion.
 */

#ifndef RK_CELLS
/* What sets a cell apart from the plain recurrence s_t = f(x_t W_ih^T + s_{t-1} W_hh^T + b):
 *   RK_CELL_STATE    a cell state c (B,H) travels beside the state (LSTM's (h, c));
 *   RK_HIDDEN_APART  the recurrent part W_hh s + b_hh enters the step on its own, not summed into
 *                    the gates (GRU: the reset gate multiplies it), so b_hh is not folded into the
 *                    input part and backward reports that part's gradient separately (dgh);
 *   RK_OUTPUT_LAYER  the state is the output y = psi(W_hy h + b_y) of an output layer (Jordan),
 *                    with weights w_hy (S,H) and b_y (S) and no b_hh. */
enum { RK_CELL_STATE = 1, RK_HIDDEN_APART = 2, RK_OUTPUT_LAYER = 4 };

/* One line per cell: X(code, name, gate blocks, traits). The code is the cell's number in the
 * kernels' interface (its CellSpec's NativeSpec.code); the gate width is G = blocks * H. */
#define RK_CELLS(X)                        \
    X(0, elman, 1, 0)                      \
    X(1, jordan, 1, RK_OUTPUT_LAYER)       \
    X(2, lstm, 4, RK_CELL_STATE)           \
    X(3, gru, 3, RK_HIDDEN_APART)

#define RK_CELL_ROW(code, name, blocks, traits) [code] = {blocks, traits},
static const struct { int blocks, traits; } rk_cells[] = { RK_CELLS(RK_CELL_ROW) };
#undef RK_CELL_ROW
#define RK_NUM_CELLS ((int)(sizeof rk_cells / sizeof rk_cells[0]))

static inline int cell_known(int cell) { return cell >= 0 && cell < RK_NUM_CELLS && rk_cells[cell].blocks > 0; }
static inline int gate_width(int cell, int H) { return (cell_known(cell) ? rk_cells[cell].blocks : 1) * H; }
static inline int cell_has(int cell, int trait) { return cell_known(cell) && (rk_cells[cell].traits & trait) != 0; }

/* the table as the Python side sees it (tests compare it with every CellSpec's NativeSpec):
 * blocks * 256 + traits, or -1 for a code no cell has */
RK_EXPORT int rk_cell_info(int cell) { return cell_known(cell) ? rk_cells[cell].blocks * 256 + rk_cells[cell].traits : -1; }
#endif

/* What a cell's forward step sees, for one sequence at one time step (pointers into the
 * kernels' buffers, which never overlap). H hidden units, S state width, G = blocks * H. */
typedef struct {
    int H, S, act, out_act;   /* act: the hidden nonlinearity, out_act: an output layer's (ACT_*) */
    real *g;                  /* (G) in: the gates' sum x W_ih^T + s W_hh^T + biases (RK_HIDDEN_APART:
                               * nothing); out: what backward reads (the gates' activations) */
    const real *xg, *hh;      /* (G) RK_HIDDEN_APART: the input part and the recurrent part, apart */
    const real *sp;           /* (S) the previous state */
    real *sn, *o;             /* (S) the new state and the step's output */
    const real *cp;           /* (H) RK_CELL_STATE: the previous cell state */
    real *cn;                 /* (H) RK_CELL_STATE: the new cell state */
    real *aux;                /* (H) a per-step value backward needs (the cell's header says which) */
    const real *wy, *by;      /* RK_OUTPUT_LAYER: W_hy^T (H,S) and b_y (S, or NULL) */
} FN(step_t);

/* What a cell's backward step sees (the same step's saved values, and its gradients). */
typedef struct {
    int H, S, act, out_act;
    const real *g, *aux, *sp, *sn, *cp;  /* as the forward step left them */
    const real *dh;           /* (S) gradient of the new state (carried back plus the output's) */
    real *dx;                 /* (G) out: gradient of the gates' input part (dgx) */
    real *dgh;                /* (G) RK_HIDDEN_APART out: gradient of the recurrent part */
    real *dsp;                /* (S) out (zeroed by the caller): gradient of the previous state other
                               * than through W_hh (which the generic code adds) */
    real *dc;                 /* (H) RK_CELL_STATE: in the new cell state's gradient, out the previous */
    real *dy;                 /* (S) RK_OUTPUT_LAYER out: gradient of W_hy h + b_y */
    const real *wy;           /* RK_OUTPUT_LAYER: W_hy (S,H) */
    real *tmp;                /* (H) scratch */
} FN(grad_t);

#include "cell_elman.h"
#include "cell_jordan.h"
#include "cell_lstm.h"
#include "cell_gru.h"
