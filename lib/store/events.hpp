// Log events of no caller's call (a drain completed under a shard lock, a
// batch run by the asynchronous dispatcher) go out from one event thread of
// the store, which shares nothing with the store but its queue: a log
// callback that closes the store from that thread destroys the store, not
// what the thread still reads.
#pragma once

#include <memory>
#include <string>
#include <thread>

namespace daxkv {

class EventThread {
public:
    EventThread();
    // Stops the thread (detached when the store goes from the thread itself).
    ~EventThread();
    EventThread(const EventThread &) = delete;
    EventThread &operator=(const EventThread &) = delete;

    // Queue an event (the thread starts with the first one). Safe under any
    // lock of the store; an event that cannot be queued is dropped.
    void post(int level, std::string msg) noexcept;
    // Every event posted before the stop goes out before this returns (from
    // the event thread itself: once its callback returns); later ones are
    // dropped.
    void stop() noexcept;

private:
    struct Queue;
    std::shared_ptr<Queue> q_;
    std::thread thread_; // started by the first event, under the queue's lock
};

} // namespace daxkv
