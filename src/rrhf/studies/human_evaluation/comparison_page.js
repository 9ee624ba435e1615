"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const DATA = JSON.parse($("tasks").textContent);
  const tasks = DATA.tasks;
  const LABELS = {left: "Reply 1 is better", tie: "Tie", right: "Reply 2 is better"};
  // Every page opened from disk shares one origin, so the stored work is keyed by export and batch.
  const STORE_KEY = `rrhf-comparison:${DATA.export}:batch${DATA.batch}`;
  let judgments = new Map();  // pair_id -> "left" | "tie" | "right"
  let current = 0;

  const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;
  const judged = () => tasks.filter((task) => judgments.has(task.pair_id)).length;
  const firstUnjudged = () => Math.max(0, tasks.findIndex((task) => !judgments.has(task.pair_id)));

  function progress() {
    const left = tasks.length - judged();
    return left ? `${plural(left, "pair")} of ${tasks.length} left to judge.`
      : `All ${plural(tasks.length, "pair")} judged: type your name and click Save to download ${DATA.fileName}.`;
  }

  // localStorage may be missing or refuse (pages opened from disk, private windows): then work is kept only
  // until the page is closed, and Save is the way to keep it.
  function persist() {
    try {
      window.localStorage.setItem(STORE_KEY, JSON.stringify(
        {annotator: $("annotator").value, current, judgments: Object.fromEntries(judgments)}));
    } catch (error) { /* storage denied: nothing to do */ }
  }
  function restore() {
    let stored = null;
    try {
      stored = JSON.parse(window.localStorage.getItem(STORE_KEY) || "null");
    } catch (error) { return; }
    if (!stored || typeof stored !== "object") return;
    const saved = stored.judgments && typeof stored.judgments === "object" ? stored.judgments : {};
    for (const task of tasks) {  // pairs the page no longer has, and bad values, are dropped
      const value = saved[task.pair_id];
      if (DATA.judgments.includes(value)) judgments.set(task.pair_id, value);
    }
    if (typeof stored.annotator === "string") $("annotator").value = stored.annotator;
    if (Number.isInteger(stored.current)) current = stored.current;
  }

  function render(message) {
    const n = tasks.length;
    current = Math.max(0, Math.min(current, n - 1));
    $("pair").hidden = n === 0;
    $("previous").disabled = current <= 0;
    $("next").disabled = current >= n - 1;
    if (!n) {
      $("counter").textContent = "no pairs";
      $("status").textContent = "This page has no pairs to judge.";
      return;
    }
    const task = tasks[current];
    $("counter").textContent = `Pair ${current + 1} of ${n} \u00b7 ${judged()} judged`;
    $("prompt").textContent = task.prompt;
    $("left").textContent = task.left;
    $("right").textContent = task.right;
    const choice = judgments.get(task.pair_id);
    for (const value of DATA.judgments) {
      const button = $(`choose-${value}`);
      button.classList.toggle("chosen", choice === value);
      button.setAttribute("aria-pressed", String(choice === value));
    }
    $("judgment").textContent = choice ? `Your judgment: ${LABELS[choice]}` : "Not judged yet";
    $("status").textContent = message ?? progress();
  }

  function judge(value) {
    if (!tasks.length) return;
    judgments.set(tasks[current].pair_id, value);
    if (current < tasks.length - 1) current += 1;
    persist();
    render();
  }

  function go(step) {
    current += step;
    render();
    persist();
  }

  function save() {
    const annotator = $("annotator").value.trim();
    const saved = tasks.filter((task) => judgments.has(task.pair_id))
      .map((task) => ({pair_id: task.pair_id, judgment: judgments.get(task.pair_id)}));
    const content = {export: DATA.export, batch: DATA.batch, annotator, judgments: saved};
    const blob = new Blob([JSON.stringify(content, null, 2) + "\n"], {type: "application/json"});
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = DATA.fileName;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    const left = tasks.length - saved.length;
    render(`Saved ${plural(saved.length, "judgment")} as ${DATA.fileName}`
           + (left ? `; ${plural(left, "pair")} left to judge.` : ": all pairs judged.")
           + (annotator ? "" : " No name was given: type yours under Your name and save again."));
  }

  // A saved judgments file, checked: for this export and batch, only this page's pairs, each once.
  function readJudgments(content) {
    if (content === null || typeof content !== "object" || Array.isArray(content)) {
      throw new Error("a judgments file is a JSON object");
    }
    if (content.export !== DATA.export || content.batch !== DATA.batch) {
      throw new Error(`it is for export ${JSON.stringify(content.export)} batch ${JSON.stringify(content.batch)}, `
                      + `this page is export "${DATA.export}" batch ${DATA.batch}`);
    }
    if (typeof (content.annotator ?? "") !== "string") throw new Error("field 'annotator' should be a string");
    if (!Array.isArray(content.judgments)) throw new Error("field 'judgments' should be a list");
    const known = new Set(tasks.map((task) => task.pair_id));
    const read = new Map();
    content.judgments.forEach((entry, k) => {
      const where = `judgments[${k}]`;
      if (entry === null || typeof entry !== "object") throw new Error(`${where} should be an object`);
      const id = JSON.stringify(entry.pair_id);
      if (!known.has(entry.pair_id)) throw new Error(`${where}: pair_id ${id} is not on this page`);
      if (read.has(entry.pair_id)) throw new Error(`${where}: pair_id ${id} appears twice`);
      if (!DATA.judgments.includes(entry.judgment)) {
        throw new Error(`${where}: judgment should be one of ${DATA.judgments.join(", ")}`);
      }
      read.set(entry.pair_id, entry.judgment);
    });
    return read;
  }

  async function load(event) {
    const file = event.target.files[0];
    if (!file) return;
    try {
      const content = JSON.parse(await file.text());
      judgments = readJudgments(content);
      $("annotator").value = content.annotator ?? "";
      current = firstUnjudged();
      persist();
      render(`Loaded ${plural(judgments.size, "judgment")} from ${file.name}. ${progress()}`);
    } catch (error) {
      $("status").textContent = `Could not load ${file.name}: ${error.message}`;
    }
    event.target.value = "";
  }

  const KEYS = {
    "1": ["judge", "left"], ArrowLeft: ["judge", "left"],
    "2": ["judge", "tie"], ArrowDown: ["judge", "tie"], t: ["judge", "tie"], T: ["judge", "tie"],
    "3": ["judge", "right"], ArrowRight: ["judge", "right"],
    Backspace: ["go", -1], ArrowUp: ["go", -1], PageUp: ["go", -1], PageDown: ["go", 1],
  };
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey) return;
    const target = event.target;
    if (target instanceof Element && target.closest("input, textarea, select, [contenteditable]")) return;
    const action = KEYS[event.key];
    if (!action) return;
    event.preventDefault();
    if (action[0] === "go") go(action[1]);
    else if (!event.repeat) judge(action[1]);  // a held key judges one pair, not a run of them
  });
  for (const value of DATA.judgments) $(`choose-${value}`).addEventListener("click", () => judge(value));
  $("previous").addEventListener("click", () => go(-1));
  $("next").addEventListener("click", () => go(1));
  $("annotator").addEventListener("input", persist);
  $("save").addEventListener("click", save);
  $("load").addEventListener("change", load);
  restore();
  render();
})();
