// Runs an undo step when a change fails, however it fails (an error
// returned or an exception): dismissed once the change holds.
//
// The step is kept as it is given (a lambda), never in a std::function:
// making an Undo must not fail, as it is made once the change has begun
// (out of memory there would leave the change without its undo).
#pragma once

#include <type_traits>
#include <utility>

namespace daxkv {

template <typename F>
class Undo {
    static_assert(std::is_nothrow_move_constructible_v<F>,
                  "an undo step must be movable without failing");

public:
    explicit Undo(F f) noexcept : f_(std::move(f)) {}
    ~Undo() {
        if (armed_)
            f_();
    }
    void dismiss() noexcept { armed_ = false; }
    Undo(const Undo &) = delete;
    Undo &operator=(const Undo &) = delete;

private:
    F f_;
    bool armed_ = true;
};

} // namespace daxkv
