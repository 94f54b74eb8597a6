// parse_json (json_text.hpp): nlohmann's SAX parser, with a document
// builder of its own. nlohmann's parser itself is iterative, so the nesting
// of hostile text costs it no stack; what it hands over is placed here.
#include "internal/json_text.hpp"

#include <utility>
#include <vector>

#include "internal/util.hpp"

namespace daxkv {

namespace {

using json = nlohmann::json;

class TreeBuilder final : public nlohmann::json_sax<json> {
public:
    TreeBuilder(json &root, const JsonLimits &limits) : root_(root), limits_(limits) {}

    const std::string &refusal() const noexcept { return refusal_; }

    bool null() override { return place(nullptr) != nullptr; }
    bool boolean(bool v) override { return place(v) != nullptr; }
    bool number_integer(number_integer_t v) override { return place(v) != nullptr; }
    bool number_unsigned(number_unsigned_t v) override { return place(v) != nullptr; }
    bool number_float(number_float_t v, const string_t &) override {
        return place(v) != nullptr;
    }
    bool string(string_t &v) override { return place(std::move(v)) != nullptr; }
    bool binary(binary_t &v) override { return place(json::binary(std::move(v))) != nullptr; }

    bool start_object(std::size_t) override { return open(json::value_t::object); }
    bool start_array(std::size_t) override { return open(json::value_t::array); }
    bool end_object() override { return close(); }
    bool end_array() override { return close(); }

    bool key(string_t &k) override {
        json &object = *open_.back();
        if (limits_.refuse_duplicate_keys && object.contains(k))
            return refuse("gives the key \"" + printable(k) + "\" twice in one object");
        member_ = &object[std::move(k)]; // null until its value comes
        return true;
    }

    bool parse_error(std::size_t, const std::string &, const nlohmann::detail::exception &e) override {
        return refuse(std::string("is malformed: ") + e.what());
    }

private:
    // Puts v where the parser is: the root, the end of the open array, or
    // the member key() made. Returns where it went.
    template <typename V>
    json *place(V &&v) {
        if (open_.empty()) {
            root_ = std::forward<V>(v);
            return &root_;
        }
        json &parent = *open_.back();
        if (parent.is_array()) {
            // Built in place: a failed growth leaves the array as it was.
            parent.emplace_back(std::forward<V>(v));
            return &parent.back();
        }
        *member_ = std::forward<V>(v);
        return member_;
    }

    bool open(json::value_t kind) {
        if (open_.size() >= static_cast<std::size_t>(limits_.max_depth))
            return refuse("nests deeper than " + std::to_string(limits_.max_depth) + " levels");
        open_.reserve(open_.size() + 1); // before placing: a push cannot fail after it
        open_.push_back(place(kind));
        return true;
    }

    bool close() {
        open_.pop_back();
        return true;
    }

    bool refuse(std::string why) {
        refusal_ = std::move(why);
        return false;
    }

    json &root_;
    const JsonLimits limits_;
    std::vector<json *> open_; // containers being filled, outermost first
    json *member_ = nullptr;   // the object member whose value comes next
    std::string refusal_;
};

} // namespace

std::string parse_json(JsonTree &tree, const std::string &text, const JsonLimits &limits) {
    TreeBuilder builder(tree.value(), limits);
    if (json::sax_parse(text, &builder))
        return std::string();
    return builder.refusal().empty() ? std::string("is malformed") : builder.refusal();
}

} // namespace daxkv
