"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const CONFIG = JSON.parse($("config").textContent);
  const PRED = (n) => `prediction ${n}`;
  let records = [];
  let current = 0;

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }
  function say(message) { $("status").textContent = message; }
  // Offsets in the file count code points (Python's str); the DOM counts UTF-16 units.
  const chars = (text) => Array.from(text);
  const unitsToPoints = (text, units) => Array.from(text.slice(0, units)).length;
  const typeClass = (type) => `t${CONFIG.errorTypes.indexOf(type)}`;

  function fail(where, message) { throw new Error(`${where}: ${message}`); }
  function string(value, where, key) {
    if (typeof value !== "string") fail(where, `field '${key}' should be a string`);
    return value;
  }
  function integer(value, where, key) {
    if (!Number.isInteger(value)) fail(where, `field '${key}' should be an integer`);
    return value;
  }

  // A record in the qa-feedback layout, keys in FeedbackRecord.as_json's order, checked as read_qa_feedback does.
  function normalise(raw, index) {
    const where = `record ${index}`;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(where, "a record is a JSON object");
    const record = {question: string(raw.question, where, "question"),
                    passages: Array.isArray(raw.passages) ? raw.passages : [], gold: String(raw.gold ?? "")};
    for (let n = 1; n <= CONFIG.predictions; n++) record[PRED(n)] = string(raw[PRED(n)], where, PRED(n));
    const feedback = raw.feedback || {};
    const length = chars(record[PRED(1)]).length;
    const errors = (feedback.errors || []).map((error, k) => {
      const at = `${where} feedback.errors[${k}]`;
      if (!CONFIG.errorTypes.includes(error["error type"])) fail(at, `unknown error type ${error["error type"]}`);
      const start = integer(error.start, at, "start"), end = integer(error.end, at, "end");
      if (!(0 <= start && start < end && end <= length)) fail(at, `span ${start}:${end} is not within prediction 1`);
      return {"error type": error["error type"], explanation: String(error.explanation ?? ""), start, end};
    });
    const missing = (feedback["missing-info"] || []).map((info, k) => {
      const at = `${where} feedback.missing-info[${k}]`;
      if (!CONFIG.missingTypes.includes(info["error type"])) {
        fail(at, `unknown missing-info type ${info["error type"]}`);
      }
      if (!Array.isArray(info.sentence_id)) fail(at, "field 'sentence_id' should be a list");
      return {"error type": info["error type"], passage_id: integer(info.passage_id, at, "passage_id"),
              sentence_id: info.sentence_id.map((id) => integer(id, at, "sentence_id"))};
    });
    record.feedback = {errors, "missing-info": missing,
                       "corrected-prediction": String(feedback["corrected-prediction"] ?? "")};
    const preference = raw.preference === undefined ? CONFIG.pairs.map(() => 0) : raw.preference;
    if (!Array.isArray(preference) || preference.length !== CONFIG.pairs.length
        || !preference.every((value) => value === 0 || value === 1 || value === 2)) {
      fail(where, `field 'preference' should be ${CONFIG.pairs.length} values of 0, 1 or 2`);
    }
    record.preference = preference.slice();
    return record;
  }

  function renderPassages(record) {
    const box = $("passages");
    box.replaceChildren();
    $("passages-section").hidden = record.passages.length === 0;
    record.passages.forEach((passage, p) => {
      const items = Array.isArray(passage) ? passage : [passage];
      const div = element("div", undefined, "passage");
      div.append(element("h3", `passage_id ${p + 1}: ${String(items[0] ?? "")}`));
      const list = element("ul", undefined, "sentences");
      items.slice(1).forEach((sentence, s) => {
        const item = element("li");
        item.append(element("span", String(s + 1), "sid"), element("span", String(sentence), "text"));
        list.append(item);
      });
      div.append(list);
      box.append(div);
    });
  }

  // Prediction 1 as text nodes and <mark>s, cut at every span boundary (spans may overlap); nothing but the
  // prediction's own characters goes into the box, so a Range's text up to a point is that point's offset.
  function renderPrediction(record) {
    const text = chars(record[PRED(1)]);
    const errors = record.feedback.errors;
    const cuts = [...new Set([0, text.length, ...errors.flatMap((e) => [e.start, e.end])])].sort((a, b) => a - b);
    const nodes = [];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [a, b] = [cuts[i], cuts[i + 1]];
      const piece = text.slice(a, b).join("");
      const covering = errors.map((e, k) => [e, k]).filter(([e]) => e.start <= a && b <= e.end);
      if (!covering.length) { nodes.push(document.createTextNode(piece)); continue; }
      const mark = element("mark", piece, typeClass(covering[0][0]["error type"]));
      if (covering.length > 1) mark.classList.add("overlap");
      mark.title = covering.map(([e, k]) => `#${k + 1} ${e["error type"]}`).join(", ");
      nodes.push(mark);
    }
    $("prediction").replaceChildren(...nodes);
    const list = $("errors");
    list.replaceChildren();
    errors.forEach((error, k) => {
      const item = element("li");
      const explanation = element("input", undefined, "explanation");
      explanation.type = "text";
      explanation.placeholder = "explanation (optional)";
      explanation.value = error.explanation;
      explanation.addEventListener("input", () => { error.explanation = explanation.value; });
      const remove = element("button", "Delete", "delete");
      remove.type = "button";
      remove.addEventListener("click", () => {
        errors.splice(k, 1);
        render();
        say(`Deleted span ${error.start}:${error.end}.`);
      });
      item.append(element("span", error["error type"], `type ${typeClass(error["error type"])}`),
                  element("span", `${error.start}:${error.end}`, "offsets"),
                  element("q", text.slice(error.start, error.end).join("")), explanation, remove);
      list.append(item);
    });
  }

  function renderMissing(record) {
    const list = $("missing");
    list.replaceChildren();
    const missing = record.feedback["missing-info"];
    missing.forEach((info, k) => {
      const item = element("li", `${info["error type"]}: passage_id ${info.passage_id}, `
                                 + `sentences ${info.sentence_id.join(", ")} `);
      const remove = element("button", "Delete", "delete");
      remove.type = "button";
      remove.addEventListener("click", () => { missing.splice(k, 1); render(); });
      item.append(remove);
      list.append(item);
    });
  }

  function renderPreferences(record) {
    const grid = $("predictions");
    grid.replaceChildren();
    for (let n = 1; n <= CONFIG.predictions; n++) {
      const cell = element("div", undefined, "reply");
      cell.append(element("h3", PRED(n)), element("div", record[PRED(n)], "text"));
      grid.append(cell);
    }
    const box = $("preferences");
    box.replaceChildren();
    CONFIG.pairs.forEach(([a, b], k) => {
      const pair = element("fieldset", undefined, "pair");
      pair.append(element("legend", `${a} vs ${b}`));
      for (const [value, label] of [[1, `${a} is better`], [2, `${b} is better`], [0, "neither"]]) {
        const input = element("input");
        Object.assign(input, {type: "radio", name: `preference-${k}`, id: `preference-${k}-${value}`,
                              value: String(value), checked: record.preference[k] === value});
        input.addEventListener("change", () => { record.preference[k] = value; });
        const wrapper = element("label");
        wrapper.append(input, ` ${label}`);
        pair.append(wrapper);
      }
      box.append(pair);
    });
  }

  function render() {
    const n = records.length;
    current = Math.max(0, Math.min(current, n - 1));
    $("record").hidden = n === 0;
    $("counter").textContent = n ? `record ${current + 1} of ${n}` : "no records: load a qa-feedback file";
    $("previous").disabled = current <= 0;
    $("next").disabled = current >= n - 1;
    if (!n) return;
    const record = records[current];
    $("question").textContent = record.question;
    renderPassages(record);
    renderPrediction(record);
    renderMissing(record);
    renderPreferences(record);
    $("corrected").value = record.feedback["corrected-prediction"];
    $("gold").textContent = record.gold;
  }

  function offsetIn(box, node, offset) {
    const range = document.createRange();
    range.setStart(box, 0);
    range.setEnd(node, offset);
    return range.toString().length;
  }

  function markSpan() {
    const record = records[current];
    const box = $("prediction");
    const selection = window.getSelection();
    if (!record || !selection.rangeCount || selection.isCollapsed) {
      return say("Nothing is selected: select characters of prediction 1 first.");
    }
    const range = selection.getRangeAt(0);
    if (!box.contains(range.startContainer) || !box.contains(range.endContainer)) {
      return say("The selection is not within prediction 1: select characters of prediction 1 only.");
    }
    const text = record[PRED(1)];
    let a = offsetIn(box, range.startContainer, range.startOffset);
    let b = offsetIn(box, range.endContainer, range.endOffset);
    while (a < b && /\s/.test(text[a])) a++;
    while (b > a && /\s/.test(text[b - 1])) b--;
    if (a >= b) return say("The selection is only whitespace: nothing marked.");
    const span = {"error type": $("error-type").value, explanation: "",
                  start: unitsToPoints(text, a), end: unitsToPoints(text, b)};
    const errors = record.feedback.errors;
    if (errors.some((e) => e.start === span.start && e.end === span.end && e["error type"] === span["error type"])) {
      return say(`Span ${span.start}:${span.end} is already marked ${span["error type"]}.`);
    }
    errors.push(span);
    selection.removeAllRanges();
    render();
    say(`Marked ${span["error type"]} span ${span.start}:${span.end}.`);
  }

  function addMissing() {
    const record = records[current];
    const passage = $("passage-id").value.trim();
    const ids = $("sentence-ids").value.split(",").map((id) => id.trim()).filter((id) => id !== "");
    if (!/^\d+$/.test(passage)) return say("passage_id should be an integer, e.g. 1.");
    if (!ids.length || !ids.every((id) => /^\d+$/.test(id))) {
      return say("Sentence ids should be integers separated by commas, e.g. 1, 3.");
    }
    record.feedback["missing-info"].push({"error type": $("missing-type").value, passage_id: Number(passage),
                                          sentence_id: ids.map(Number)});
    $("passage-id").value = "";
    $("sentence-ids").value = "";
    render();
    say(`Added ${$("missing-type").value}.`);
  }

  function save() {
    const blob = new Blob([JSON.stringify(records, null, 2) + "\n"], {type: "application/json"});
    const link = element("a");
    link.href = URL.createObjectURL(blob);
    link.download = CONFIG.fileName;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    say(`Saved ${records.length} records as ${CONFIG.fileName}.`);
  }

  async function load(event) {
    const file = event.target.files[0];
    if (!file) return;
    try {
      const document_ = JSON.parse(await file.text());
      if (!Array.isArray(document_)) throw new Error("a qa-feedback file is a JSON list of records");
      records = document_.map(normalise);
      current = 0;
      render();
      say(`Loaded ${records.length} records from ${file.name}.`);
    } catch (error) {
      say(`Could not load ${file.name}: ${error.message}`);
    }
    event.target.value = "";
  }

  for (const [id, types] of [["error-type", CONFIG.errorTypes], ["missing-type", CONFIG.missingTypes]]) {
    types.forEach((type, k) => {
      const option = element("option", type, id === "error-type" ? `t${k}` : undefined);
      option.value = type;
      $(id).append(option);
    });
  }
  CONFIG.errorTypes.forEach((type) => $("legend").append(element("span", type, `swatch ${typeClass(type)}`)));
  function go(step) {
    current += step;
    window.getSelection().removeAllRanges();
    render();
    say("");
  }
  $("previous").addEventListener("click", () => go(-1));
  $("next").addEventListener("click", () => go(1));
  // Pressing the button must not take the selection away before the click reads it.
  $("mark-span").addEventListener("mousedown", (event) => event.preventDefault());
  $("mark-span").addEventListener("click", markSpan);
  $("add-missing").addEventListener("click", addMissing);
  $("corrected").addEventListener("input", () => {
    if (records.length) records[current].feedback["corrected-prediction"] = $("corrected").value;
  });
  $("save").addEventListener("click", save);
  $("load").addEventListener("change", load);
  try {
    records = JSON.parse($("records").textContent).map(normalise);
  } catch (error) {
    say(`The page's records are not valid: ${error.message}`);
  }
  render();
})();
