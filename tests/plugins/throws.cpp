// throws: an SDK plugin whose calls throw C++ exceptions on request (option throw_in),
// so the tests can check that the SDK's guard turns each into a status with the
// exception's message and that the host reports it as a ph::Error naming the plugin.
#include <prompthost_sdk/sdk.hpp>

#include <xtensor/xnoalias.hpp>

#include <stdexcept>
#include <string>

namespace {

using namespace ph::sdk;

const char* const kWhere[] = {"nothing", "create", "forward", "backward",
                              "export",  "import", nullptr};
const ph_option kOptions[] = {
    choice_option("throw_in", "\"nothing\"", kWhere, "which call throws"),
};

const ph_method_descriptor kDescriptor = {
    sizeof(ph_method_descriptor),
    "throws",
    "PROMPT_TUNING",
    "1.0.0",
    "A test plugin whose calls throw C++ exceptions when asked to (throw_in).",
    kOptions,
    1,
    nullptr,  // task types not declared: offered every one
    0};

class Throws : public Method {
 public:
  explicit Throws(const MethodContext& ctx)
      : Method(ctx), where_(ctx.config.at("throw_in").get<std::string>()), dim_(ctx.model.dim) {
    if (where_ == "create")
      throw std::runtime_error("create exploded on purpose (throw_in=create)");
    weight_ = &add_parameter("embedding.weight", {1, (size_t)dim_});
  }

  ph_injection_spec injection() const override { return ph::sdk::virtual_tokens_spec(1); }

  void forward(const Batch&, bool, DLTensor* virtual_tokens, DLTensor*) override {
    if (where_ == "forward") throw std::runtime_error("forward exploded on purpose");
    xt::noalias(view<float, 3>(*virtual_tokens)) =
        xt::zeros<float>({size_t{1}, size_t{1}, (size_t)dim_});
  }

  void backward(const Batch&, const DLTensor*, const DLTensor*) override {
    // Not a std::exception: the guard's last resort must catch it too.
    if (where_ == "backward") throw 42;
  }

  void export_adapter(const ph_tensor_sink& sink) const override {
    if (where_ == "export") throw Error(PH_ERR_IO, "export failed on purpose");
    put_tensor(sink, "prompt_embeddings", weight_->value.dl());
  }

  void import_adapter(const ph_tensor_source&) override {
    if (where_ == "import") throw std::bad_alloc();
  }

 private:
  std::string where_;
  int dim_;
  Parameter* weight_ = nullptr;
};

}  // namespace

PH_EXPORT_METHOD(Throws, kDescriptor)
