#include "adapters/node_list.h"

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "adapters/admission_codec.h"
#include "support/fixtures.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::ReadFixture;

std::vector<json> Ok(const StatusOr<std::vector<json>>& result) {
  if (!result.ok()) {
    ADD_FAILURE() << "failed: " << result.status().message();
    return {};
  }
  return *result;
}

std::string Err(const StatusOr<std::vector<json>>& result) {
  if (result.ok()) {
    ADD_FAILURE() << "succeeded with " << result->size() << " objects; an error was expected";
    return "";
  }
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  return result.status().message();
}

std::vector<std::string> Names(const std::vector<json>& nodes) {
  std::vector<std::string> names;
  for (const json& node : nodes) names.push_back(node["metadata"]["name"].get<std::string>());
  return names;
}

json Node(const std::string& name) {
  return {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}};
}

TEST(ReadNodeObjectsTest, SingleNode) {
  std::vector<json> nodes = Ok(ReadNodeObjects(Node("a").dump()));
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0], Node("a"));
}

TEST(ReadNodeObjectsTest, NodeListItemsMayOmitTheirKind) {
  json list = {{"apiVersion", "v1"}, {"kind", "NodeList"}, {"items", json::array()}};
  list["items"].push_back(Node("a"));
  list["items"].push_back({{"metadata", {{"name", "b"}}}});
  // Items of another kind, and items that are not objects, are not nodes.
  list["items"].push_back({{"kind", "Pod"}, {"metadata", {{"name", "p"}}}});
  list["items"].push_back("c");
  list["items"].push_back(nullptr);
  EXPECT_EQ(Names(Ok(ReadNodeObjects(list.dump()))), (std::vector<std::string>{"a", "b"}));
}

TEST(ReadNodeObjectsTest, ListSkipsPodsAndKindlessItems) {
  json list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", json::array()}};
  list["items"].push_back({{"kind", "Pod"}, {"metadata", {{"name", "pod-1"}}}});
  list["items"].push_back(Node("a"));
  list["items"].push_back({{"kind", "Pod"}, {"metadata", {{"name", "pod-2"}}}});
  list["items"].push_back({{"metadata", {{"name", "no-kind"}}}});
  list["items"].push_back(Node("b"));
  EXPECT_EQ(Names(Ok(ReadNodeObjects(list.dump()))), (std::vector<std::string>{"a", "b"}));
}

TEST(ReadNodeObjectsTest, AckFixtureHasEightNodes) {
  std::vector<json> nodes = Ok(ReadNodeObjects(ReadFixture("nodes/ack-nodes.json")));
  EXPECT_EQ(Names(nodes),
            (std::vector<std::string>{"gpu-compatible", "gpu-old-cgpu", "gpu-no-facts",
                                      "gpu-container-os", "gpu-gfd-driver", "gpu-share-only",
                                      "gpu-isolation-off", "cpu-worker"}));
}

TEST(ReadNodeObjectsTest, KubectlYamlList) {
  const std::string yaml =
      "apiVersion: v1\n"
      "items:\n"
      "- apiVersion: v1\n"
      "  kind: Node\n"
      "  metadata:\n"
      "    name: a\n"
      "    labels:\n"
      "      ack.node.gpu.schedule: cgpu\n"
      "- apiVersion: v1\n"
      "  kind: Pod\n"
      "  metadata:\n"
      "    name: pod-1\n"
      "kind: List\n"
      "metadata:\n"
      "  resourceVersion: \"\"\n";
  std::vector<json> nodes = Ok(ReadNodeObjects(yaml));
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0]["metadata"]["labels"]["ack.node.gpu.schedule"], "cgpu");
}

TEST(ReadNodeObjectsTest, MultiDocumentYaml) {
  const std::string yaml =
      "---\n"
      "kind: Node\n"
      "metadata: {name: a}\n"
      "---\n"
      "# an empty document is skipped\n"
      "---\n"
      "kind: NodeList\n"
      "items:\n"
      "- metadata: {name: b}\n"
      "- metadata: {name: c}\n"
      "...\n"
      "---\n"
      "kind: Node\n"
      "metadata: {name: d}\n";
  EXPECT_EQ(Names(Ok(ReadNodeObjects(yaml))), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST(ReadNodeObjectsTest, EmptyListsHoldNoNodes) {
  for (const char* text : {R"({"kind": "NodeList", "items": []})", R"({"kind": "List"})",
                           R"({"kind": "List", "items": null})", "kind: NodeList\nitems: []\n",
                           "kind: List\nitems:\n"}) {
    EXPECT_TRUE(Ok(ReadNodeObjects(text)).empty()) << text;
  }
}

TEST(ReadNodeObjectsTest, EmptyInputIsAnError) {
  for (const char* text : {"", "   ", "\n\t\r\n"}) {
    EXPECT_EQ(Err(ReadNodeObjects(text)),
              "input is empty; expected kubectl get nodes -o json output")
        << "\"" << text << "\"";
  }
}

TEST(ReadNodeObjectsTest, MalformedJson) {
  for (const char* text : {"{", R"({"kind": "Node",})", "[1, 2", "  {\"kind\": Node}",
                           R"({"kind": "Node"} trailing)"}) {
    EXPECT_EQ(Err(ReadNodeObjects(text)), "input looks like JSON but does not parse") << text;
  }
}

TEST(ReadNodeObjectsTest, MalformedYaml) {
  const std::string message = Err(ReadNodeObjects("kind: Node\nmetadata: [a, b\n"));
  EXPECT_EQ(message.rfind("input is neither JSON nor YAML (line ", 0), 0u) << message;

  EXPECT_EQ(Err(ReadNodeObjects("kind: Node\n  bad: indent\n"))
                .rfind("input is neither JSON nor YAML (line 2: ", 0),
            0u);
}

TEST(ReadNodeObjectsTest, ScalarsAndArraysAreNotNodes) {
  for (const char* text : {"42", "\"a string\"", "true", "just words"}) {
    EXPECT_EQ(Err(ReadNodeObjects(text)), "expected a Node, NodeList or List object, got string")
        << text;
  }
  EXPECT_EQ(Err(ReadNodeObjects("[1, 2]")), "expected a Node, NodeList or List object, got array");
  EXPECT_EQ(Err(ReadNodeObjects("- kind: Node\n")),
            "expected a Node, NodeList or List object, got array");
  EXPECT_EQ(Err(ReadNodeObjects("---\nkind: Node\n---\n42\n")),
            "expected a Node, NodeList or List object, got string");
}

TEST(ReadNodeObjectsTest, NullDocumentHoldsNoNodes) {
  // YAML "null" is an empty document, not an error; the check command reports "no Node objects".
  EXPECT_TRUE(Ok(ReadNodeObjects("null")).empty());
  EXPECT_TRUE(Ok(ReadNodeObjects("~\n")).empty());
}

TEST(ReadNodeObjectsTest, WrongKindIsNamed) {
  EXPECT_EQ(Err(ReadNodeObjects(R"({"kind": "Pod", "metadata": {"name": "p"}})")),
            "expected a Node, NodeList or List, got kind \"Pod\"");
  EXPECT_EQ(Err(ReadNodeObjects(R"({"metadata": {"name": "p"}})")),
            "expected a Node, NodeList or List, got kind \"\"");
  EXPECT_EQ(Err(ReadNodeObjects(R"({"kind": 7})")),
            "expected a Node, NodeList or List, got kind \"\"");
}

TEST(ReadNodeObjectsTest, ItemsMustBeAList) {
  EXPECT_EQ(Err(ReadNodeObjects(R"({"kind": "List", "items": {"kind": "Node"}})")),
            "List.items must be a list");
  EXPECT_EQ(Err(ReadNodeObjects("kind: NodeList\nitems: a node\n")),
            "NodeList.items must be a list");
}

std::string Nested(const std::string& open, const std::string& close, int depth) {
  std::string text;
  for (int i = 0; i < depth; ++i) text += open;
  for (int i = 0; i < depth; ++i) text += close;
  return text;
}

TEST(ReadNodeObjectsTest, ModeratelyNestedNodeIsRead) {
  const std::string json_text = R"({"kind": "Node", "x": )" + Nested("[", "]", 50) + "}";
  EXPECT_EQ(Ok(ReadNodeObjects(json_text)).size(), 1u);
  const std::string yaml_text = "kind: Node\nx: " + Nested("[", "]", 50) + "\n";
  EXPECT_EQ(Ok(ReadNodeObjects(yaml_text)).size(), 1u);
}

TEST(ReadNodeObjectsTest, DeeplyNestedJsonIsRefused) {
  // 100000 levels used to overflow the stack while the node was copied out of its document.
  for (int depth : {kMaxJsonDepth + 10, 100000}) {
    const std::string inside_node = R"({"kind": "Node", "x": )" + Nested("[", "]", depth) + "}";
    EXPECT_EQ(Err(ReadNodeObjects(inside_node)), "input is nested more than 128 levels deep")
        << depth;
    EXPECT_EQ(Err(ReadNodeObjects(Nested("{\"a\":", "}", depth))),
              "input is nested more than 128 levels deep")
        << depth;
  }
  // The limit counts the document itself as the first level, as the admission codec does.
  EXPECT_EQ(
      Ok(ReadNodeObjects(R"({"kind": "Node", "x": )" + Nested("[", "]", kMaxJsonDepth - 1) + "}"))
          .size(),
      1u);
  EXPECT_FALSE(
      ReadNodeObjects(R"({"kind": "Node", "x": )" + Nested("[", "]", kMaxJsonDepth) + "}").ok());
}

TEST(ReadNodeObjectsTest, DeeplyNestedYamlIsRefused) {
  const std::string flow = "kind: Node\nx: " + Nested("[", "]", kMaxJsonDepth + 10) + "\n";
  EXPECT_EQ(Err(ReadNodeObjects(flow)),
            "input is neither JSON nor YAML (line 2: nested too deeply)");

  std::string block = "kind: Node\n";
  for (int i = 0; i < kMaxJsonDepth + 10; ++i) block += std::string(2 * i, ' ') + "x:\n";
  EXPECT_EQ(Err(ReadNodeObjects(block)).rfind("input is neither JSON nor YAML (line ", 0), 0u);

  // Far deeper: yaml-cpp's own guard stops it before ours.
  const std::string very_deep = "kind: Node\nx: " + Nested("[", "]", 100000) + "\n";
  EXPECT_EQ(Err(ReadNodeObjects(very_deep)).rfind("input is neither JSON nor YAML (line ", 0), 0u);
}

TEST(YamlDocumentsToJsonTest, ScalarsBecomeStrings) {
  std::vector<json> documents =
      Ok(YamlDocumentsToJson("count: 1\n"
                             "flag: true\n"
                             "version: 1.10\n"
                             "quoted: \"007\"\n"
                             "nothing: ~\n"
                             "empty:\n"
                             "list: [a, 2, {k: v}]\n"));
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_EQ(documents[0], json::parse(R"({"count": "1", "flag": "true", "version": "1.10",
                                          "quoted": "007", "nothing": null, "empty": null,
                                          "list": ["a", "2", {"k": "v"}]})"));
}

TEST(YamlDocumentsToJsonTest, EmptyDocumentsAreDropped) {
  EXPECT_TRUE(Ok(YamlDocumentsToJson("")).empty());
  EXPECT_TRUE(Ok(YamlDocumentsToJson("---\n---\n# nothing\n")).empty());
  std::vector<json> documents = Ok(YamlDocumentsToJson("a: 1\n---\n---\nb: 2\n"));
  ASSERT_EQ(documents.size(), 2u);
  EXPECT_EQ(documents[0], json({{"a", "1"}}));
  EXPECT_EQ(documents[1], json({{"b", "2"}}));
}

TEST(YamlDocumentsToJsonTest, JsonIsYaml) {
  const std::string text = ReadFixture("nodes/ack-nodes.json");
  std::vector<json> documents = Ok(YamlDocumentsToJson(text));
  ASSERT_EQ(documents.size(), 1u);
  // Same structure; YAML makes every scalar a string, and these fixtures hold only strings.
  EXPECT_EQ(documents[0], json::parse(text));
}

TEST(YamlDocumentsToJsonTest, ErrorNamesTheLine) {
  const std::string message = Err(YamlDocumentsToJson("a: 1\nb: [\n"));
  EXPECT_EQ(message.rfind("input is neither JSON nor YAML (line 3: ", 0), 0u) << message;
  EXPECT_EQ(message.back(), ')') << message;
}

TEST(YamlDocumentsToJsonTest, ErrorInALaterDocumentNamesItsLineInTheStream) {
  const std::string message = Err(YamlDocumentsToJson("a: 1\n---\nb: 2\n---\nc: [\n"));
  EXPECT_EQ(message.rfind("input is neither JSON nor YAML (line 6: ", 0), 0u) << message;
}

TEST(YamlDocumentsToJsonTest, DocumentMarkersAreOnlyAtTheStartOfALine) {
  std::vector<json> documents =
      Ok(YamlDocumentsToJson("%YAML 1.2\n---\na: x --- y\n...\n# between\n--- {b: 2}\n"));
  ASSERT_EQ(documents.size(), 2u);
  EXPECT_EQ(documents[0], json({{"a", "x --- y"}}));
  EXPECT_EQ(documents[1], json({{"b", "2"}}));
}

// Found by fuzz_list_watch (tests/fuzz/): yaml-cpp's LoadAll never returned on these, so
// `check` and --cluster-state hung on them. Run on a thread so a regression fails, not hangs.
TEST(YamlDocumentsToJsonTest, InputsThatHungTheParserAnswer) {
  for (const char* text : {"&a,", "&l\xb4,,,,,,,,,,,,,,,,", "!t ,", "&x\n,"}) {
    auto done = std::make_shared<std::promise<bool>>();
    std::future<bool> answered = done->get_future();
    std::thread([done, input = std::string(text)] {
      (void)YamlDocumentsToJson(input);
      done->set_value(true);
    }).detach();
    EXPECT_EQ(answered.wait_for(std::chrono::seconds(10)), std::future_status::ready) << text;
  }
}

// A few hundred bytes whose aliases name 10^8 nodes: refused, not expanded until memory runs out.
TEST(YamlDocumentsToJsonTest, AliasExpansionIsBounded) {
  std::string text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  const char* names = "abcdefgh";
  for (int level = 1; level < 8; ++level) {
    text += std::string(1, names[level]) + ": &" + names[level] + " [";
    for (int i = 0; i < 10; ++i) text += std::string(i ? ", " : "") + "*" + names[level - 1];
    text += "]\n";
  }
  const std::string message = Err(YamlDocumentsToJson(text));
  EXPECT_NE(message.find("aliases expand to more nodes than the input could hold"),
            std::string::npos)
      << message;
  // Aliases used within reason still work.
  std::vector<json> documents = Ok(YamlDocumentsToJson("a: &a {k: v}\nb: *a\n"));
  EXPECT_EQ(documents.at(0)["b"], json({{"k", "v"}}));
}

}  // namespace
}  // namespace cgpu
