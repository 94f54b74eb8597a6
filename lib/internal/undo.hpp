// Runs an undo step when a change fails, however it fails (an error
// returned or an exception): dismissed once the change holds.
#pragma once

#include <functional>
#include <utility>

namespace daxkv {

class Undo {
public:
    explicit Undo(std::function<void()> f) : f_(std::move(f)) {}
    ~Undo() {
        if (f_)
            f_();
    }
    void dismiss() noexcept { f_ = nullptr; }
    Undo(const Undo &) = delete;
    Undo &operator=(const Undo &) = delete;

private:
    std::function<void()> f_;
};

} // namespace daxkv
