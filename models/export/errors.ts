/** A model, backbone or layer the ONNX exporter cannot translate yet; its message is one sentence for the user. */
export class ExportUnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportUnsupportedError';
  }
}
