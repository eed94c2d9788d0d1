// A small XML well-formedness checker for the SVG tests: balanced tags,
// quoted unique attributes, known entities, one root element. Returns the
// element names in document order (for counting groups).

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  depth: number;
}

const NAME = /^[A-Za-z_][\w.:-]*/;

export function checkXml(text: string): XmlElement[] {
  const out: XmlElement[] = [];
  const stack: string[] = [];
  let i = 0;
  let roots = 0;
  const fail = (msg: string): never => {
    throw new Error(
      `XML: ${msg} at ${i}: ${JSON.stringify(text.slice(i, i + 40))}`,
    );
  };
  const checkText = (t: string) => {
    for (const m of t.matchAll(/&([^;\s]*);?/g)) {
      if (!/^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);$/.test(m[0])) {
        fail(`bad entity ${m[0]}`);
      }
    }
    if (t.includes("<")) fail("stray <");
  };
  while (i < text.length) {
    const lt = text.indexOf("<", i);
    if (lt < 0) {
      checkText(text.slice(i));
      if (stack.length === 0 && text.slice(i).trim() !== "") {
        fail("text after root");
      }
      break;
    }
    const between = text.slice(i, lt);
    checkText(between);
    if (stack.length === 0 && between.trim() !== "") fail("text outside root");
    i = lt;
    if (text.startsWith("<?", i)) {
      const e = text.indexOf("?>", i);
      if (e < 0) fail("unterminated PI");
      i = e + 2;
      continue;
    }
    if (text.startsWith("<!--", i)) {
      const e = text.indexOf("-->", i);
      if (e < 0) fail("unterminated comment");
      i = e + 3;
      continue;
    }
    const gt = text.indexOf(">", i);
    if (gt < 0) fail("unterminated tag");
    let tag = text.slice(i + 1, gt);
    if (tag.startsWith("/")) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) fail(`unbalanced </${name}>`);
      i = gt + 1;
      continue;
    }
    const selfClose = tag.endsWith("/");
    if (selfClose) tag = tag.slice(0, -1);
    const m = NAME.exec(tag);
    if (m === null) fail("bad tag name");
    const name = m![0];
    let rest = tag.slice(name.length);
    const attrs: Record<string, string> = {};
    while (rest.trim() !== "") {
      const a = /^\s+([A-Za-z_][\w.:-]*)="([^"<]*)"/.exec(rest);
      if (a === null) fail(`bad attribute in <${name}>: ${rest.slice(0, 30)}`);
      if (Object.hasOwn(attrs, a![1]!)) fail(`duplicate attribute ${a![1]}`);
      checkText(a![2]!);
      attrs[a![1]!] = a![2]!;
      rest = rest.slice(a![0].length);
    }
    if (stack.length === 0) {
      roots++;
      if (roots > 1) fail("second root element");
    }
    out.push({ name, attrs, depth: stack.length });
    if (!selfClose) stack.push(name);
    i = gt + 1;
  }
  if (stack.length > 0) throw new Error(`XML: unclosed <${stack.pop()}>`);
  if (roots !== 1) throw new Error("XML: no root element");
  return out;
}
