#include "src/validation.h"

#include <vector>

#include "src/storage.h"

namespace rkv {

template <class S>
double validation_loss(Model<S>& model, DataLoader& val, const Route& route, int batches, Comm& comm) {
    const size_t BT = size_t(model.B) * model.T;
    std::vector<int32_t> inputs(BT), targets(BT);
    val.reset();
    double sums[2] = {0, 0};                            // {sum of per-token losses, loss tokens}
    for (int i = 0; i < batches / comm.world(); i++) {  // the ranks share the batches
        val.next_batch(inputs.data(), targets.data());
        const double n = loss_tokens(targets);
        sums[0] += model.forward(inputs.data(), targets.data(), route) * n;
        sums[1] += n;
    }
    comm.all_reduce_sum(sums, 2);
    return sums[0] / sums[1];
}

template double validation_loss(Model<float>&, DataLoader&, const Route&, int, Comm&);
#if RKV_WITH_CUDA
template double validation_loss(Model<__nv_bfloat16>&, DataLoader&, const Route&, int, Comm&);
#endif

}  // namespace rkv
