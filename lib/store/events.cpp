#include "store/events.hpp"

#include <condition_variable>
#include <mutex>
#include <utility>
#include <vector>

#include "internal/error.hpp"

namespace daxkv {

struct EventThread::Queue {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::pair<int, std::string>> events;
    bool stop = false;
};

EventThread::EventThread() : q_(std::make_shared<Queue>()) {}

EventThread::~EventThread() { stop(); }

void EventThread::post(int level, std::string msg) noexcept {
    if (!log_enabled(level))
        return;
    std::lock_guard<std::mutex> g(q_->m);
    if (q_->stop)
        return;
    try {
        q_->events.emplace_back(level, std::move(msg));
        if (!thread_.joinable()) {
            // The thread holds the queue, never the store.
            thread_ = std::thread([q = q_] {
                std::unique_lock<std::mutex> lk(q->m);
                for (;;) {
                    q->cv.wait(lk, [&] { return q->stop || !q->events.empty(); });
                    // What was posted before the stop still goes out: an
                    // error of the last batch a caller polled, right before
                    // it closed the store, is not lost.
                    std::vector<std::pair<int, std::string>> out;
                    out.swap(q->events);
                    const bool last = q->stop;
                    lk.unlock();
                    for (const auto &e : out)
                        log(e.first, "%s", e.second.c_str());
                    if (last)
                        return;
                    lk.lock();
                }
            });
        }
    } catch (...) {
        return; // out of memory or threads: the event is dropped
    }
    q_->cv.notify_one();
}

void EventThread::stop() noexcept {
    {
        std::lock_guard<std::mutex> g(q_->m);
        q_->stop = true;
        q_->cv.notify_all();
    }
    if (!thread_.joinable())
        return;
    // A log callback on the event thread that closed the store: the store
    // goes, the thread ends on its own (it reads only the queue).
    if (thread_.get_id() == std::this_thread::get_id())
        thread_.detach();
    else
        thread_.join();
}

} // namespace daxkv
