// A studio's page: streams an answer from City into #answer piece by piece, then shows
// an image from the image pathway. Bundled for the browser by build.mjs (esbuild).
import { DowncityError, UserClient } from "@downcity/client/web";

const settings = new URLSearchParams(location.hash.slice(1));
const client = new UserClient({
  baseUrl: settings.get("city") ?? "http://127.0.0.1:50051",
  studioId: settings.get("studio") ?? "",
  userToken: settings.get("token") ?? "",
});
const model = settings.get("model") ?? "";

const element = (id: string) => document.getElementById(id) as HTMLElement;
const answer = element("answer");
const error = element("error");
const picture = element("picture") as HTMLImageElement;

async function ask(prompt: string): Promise<void> {
  answer.replaceChildren();
  error.textContent = "";
  picture.hidden = true;
  document.body.dataset.state = "streaming";
  try {
    for await (const piece of client.ai.stream({ model, messages: prompt })) {
      // One element per piece, as it arrives: the page shows the answer growing.
      const span = document.createElement("span");
      span.className = "piece";
      span.dataset.at = String(performance.now());
      span.textContent = piece.delta;
      answer.append(span);
    }
    const { images } = await client.ai.image({ prompt });
    const blob = new Blob([new Uint8Array(images[0].data)], { type: images[0].mimeType });
    picture.src = URL.createObjectURL(blob);
    picture.alt = prompt;
    picture.hidden = false;
    document.body.dataset.state = "done";
  } catch (err) {
    const reason = err instanceof DowncityError ? err.reason : "";
    error.dataset.reason = reason;
    error.textContent = reason ? `${reason}: ${err instanceof Error ? err.message : err}` : String(err);
    document.body.dataset.state = "error";
  }
}

element("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  void ask((element("prompt") as HTMLInputElement).value);
});
