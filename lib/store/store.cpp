#include "store/store.hpp"

#include "engine/fault.hpp"
#include "internal/error.hpp"
#include "store/recovery.hpp"

namespace daxkv {

Store::Store(const Config &cfg) : core_(new Core(cfg)) {}

Store::~Store() {
    if (reports_)
        reports_->stop_publishing();
    core_->events.stop();
    // Before the arenas are unmapped: wait for GPU copies still reading
    // them, then unregister them from CUDA.
    gpu_.reset();
}

std::shared_ptr<Store> Store::open(const Config &cfg, StatsEncoder encode) {
    cfg.validate();
    std::shared_ptr<Store> s(new Store(cfg));
    Core &c = *s->core_;
    // Before the devices open: recovery reads every value under the guard.
    if (c.cfg.sigbus_handle)
        engine::install_sigbus_handler();
    // With hotplug a configured device that is absent is reported, not
    // fatal (the pool runs on the others and can get it back by add).
    for (const auto &d : c.cfg.devices) {
        const DeviceRow &row = c.pool.open_device(d, c.cfg.hotplug);
        c.slots.size_device(c.pool.size() - 1,
                            row.arena ? static_cast<uint32_t>(row.arena->layout().slot_count) : 0);
    }
    recover_pool(c);
    c.copier.start(c.cfg.effective_workers(), c.pool.worker_cpus());
    s->entries_.reset(new Entries(c));
    s->writes_.reset(new Writes(c, *s->entries_));
    s->reservations_.reset(new Reservations(c, *s->writes_));
    s->reads_.reset(new Reads(c, *s->entries_));
    s->gpu_.reset(new Gpu(c, *s->reads_, *s->writes_));
    s->async_.reset(new AsyncQueue(*s->writes_, *s->reads_, *s->entries_, c.events));
    s->reports_.reset(new Reports(c, *s->async_));
    s->hotplug_.reset(new Hotplug(c, *s->entries_, *s->reads_, *s->reservations_, *s->gpu_,
                                  *s->reports_));
    // Opened: what the open created on the devices stays (until here a
    // failure removed it again).
    for (auto &d : c.pool.rows())
        if (d.arena)
            d.arena->keep();
    s->reports_->start_publishing(encode);
    // No scan when no arena keeps entries (mem:, durability=none).
    const std::string scan = c.recovered.threads
                                 ? format(" (slots scanned in %.1f ms on %u thread(s))",
                                          static_cast<double>(c.recovered.usec) / 1000.0,
                                          c.recovered.threads)
                                 : std::string();
    log(kLogInfo, "opened store: %u device(s), %lld entries recovered%s", c.pool.size(),
        static_cast<long long>(c.index.entries()), scan.c_str());
    return s;
}

void Store::shutdown() {
    reports_->stop_publishing(); // the statistics page goes: the store no longer serves
    async_->shutdown();          // every submitted batch completes or is cancelled first
    core_->gate.close();
    core_->pool.wake_all(); // calls that wait return -ESHUTDOWN, and are waited for
    core_->gate.wait_idle();
    // Every call has returned: the devices saw every change of this open.
    core_->history.mark_clean_close();
}

} // namespace daxkv
